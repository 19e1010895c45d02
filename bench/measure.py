"""Small measuring helpers: percentiles, process memory, timing a repeated call."""

from __future__ import annotations

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
