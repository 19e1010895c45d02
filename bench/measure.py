"""Small measuring helpers: percentiles, process memory, timing a repeated call."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of values; 0.0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def repeat(call: Callable[[], Any], times: int, warmup: int = 3) -> list[float]:
    """Latencies of times sequential calls, after warmup calls."""
    for _ in range(warmup):
        call()
    latencies = []
    for _ in range(times):
        before = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - before)
    return latencies


def _status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident set (VmHWM) since start or the last reset_peak_rss."""
    return _status_kib(pid, "VmHWM") / 1024


def reset_peak_rss(pid: int) -> None:
    """Resets VmHWM to the current RSS (Linux: write 5 to clear_refs)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def process_cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process pid so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """pid and the live processes it started: a server under test and its worker processes
    (--workers), a PostgreSQL postmaster and its backends."""
    pids = [pid]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = stat.read_text().rsplit(")", 1)[1].split()[1]
        except (OSError, IndexError):
            continue
        if parent == str(pid):
            pids.append(int(stat.parent.name))
    return pids


def tree_cpu_by_process(pid: int) -> dict[int, float]:
    """CPU time so far of each process in pid's process tree."""
    used = {}
    for member in process_tree(pid):
        try:
            used[member] = process_cpu_seconds(member)
        except OSError:
            continue  # exited meanwhile
    return used


def tree_cpu_seconds(pid: int) -> float:
    """CPU time so far of pid's process tree (processes that already exited are not counted: a
    server's workers and the service's pooled backends live as long as the measurement)."""
    return sum(tree_cpu_by_process(pid).values())


def tree_peak_rss_mib(pid: int) -> float:
    """The largest peak resident set in pid's process tree (with worker processes: that of the
    worker that did the work) since start or the last reset_tree_peak_rss."""
    return max(peak_rss_mib(member) for member in process_tree(pid))


def reset_tree_peak_rss(pid: int) -> None:
    for member in process_tree(pid):
        reset_peak_rss(member)


def postgres_cpu_seconds(postmaster_pid: int) -> float:
    """CPU time so far of one PostgreSQL cluster: its postmaster and the live processes it started
    (backends that already exited are not counted; the service's pool keeps its connections)."""
    return tree_cpu_seconds(postmaster_pid)


def postmaster_pid(data_dir: Path) -> int:
    """The pid of the PostgreSQL cluster whose data directory is data_dir."""
    return int((data_dir / "postmaster.pid").read_text().split()[0])


class CpuWindow:
    """CPU seconds used by the server (its process and any worker processes it started) and by its
    PostgreSQL cluster between entering and leaving this context manager."""

    def __init__(self, server_pid: int, postmaster_pid: int) -> None:
        self._pids = (server_pid, postmaster_pid)
        self._start = (0.0, 0.0)
        self.server = 0.0
        self.database = 0.0

    def _now(self) -> tuple[float, float]:
        server, postmaster = self._pids
        return tree_cpu_seconds(server), postgres_cpu_seconds(postmaster)

    def __enter__(self) -> CpuWindow:
        self._start = self._now()
        return self

    def __exit__(self, *exc: object) -> None:
        (server, database), (server_start, database_start) = self._now(), self._start
        self.server, self.database = server - server_start, database - database_start


class CpuMeter:
    """Makes CpuWindows for one server and its PostgreSQL cluster."""

    def __init__(self, server_pid: int, postmaster_pid: int) -> None:
        self._pid = server_pid
        self._postmaster = postmaster_pid

    def window(self) -> CpuWindow:
        return CpuWindow(self._pid, self._postmaster)
