"""AUDITLOG_CPU_AFFINITY: each gRPC server process on one CPU of its own.

A server process runs its Python on one core at a time (the GIL), but left to the kernel its ~40
threads (request threads, the sequencer, gRPC's pollers) wake one another across both cores: every
hand-off of the GIL and every answer to a waiting request thread then wakes a thread on the other
CPU, which on a VM costs an inter-processor interrupt. Kept on one CPU, those hand-offs stay on one
core's run queue, and a busy server makes fewer context switches per call.

It is off by default: on a host whose CPUs are shared with other pinned workloads (a Kubernetes node
without the static CPU manager policy, say) "auto" would put every instance on the same first CPU.
Turn it on where the service has its CPUs to itself.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Collection, Sequence
from pathlib import Path

from auditlog.errors import ConfigError

VARIABLE = "AUDITLOG_CPU_AFFINITY"
_WANT = "want off, auto, or CPU numbers such as 0,2-3"


def available_cpus() -> list[int]:
    """The CPUs this process may run on (what auto spreads the server processes over)."""
    return sorted(os.sched_getaffinity(0))


def parse_cpu_affinity(raw: str, available: Collection[int] | None = None) -> tuple[int, ...]:
    """The CPUs that server process 1, 2, ... run on in turn (the Nth process on the Nth CPU,
    cycling), or () for no pinning. raw is off (or empty), auto (every available CPU), or a list of
    CPU numbers and ranges such as 0,2-3; every CPU named must be available to this process."""
    value = raw.strip().lower()
    if value in ("", "off"):
        return ()
    if not hasattr(os, "sched_setaffinity"):
        raise ConfigError(f"{VARIABLE}: got {raw.strip()!r}, but this platform cannot pin processes to CPUs")
    allowed = sorted(available_cpus() if available is None else available)
    if value == "auto":
        return tuple(allowed)
    cpus: list[int] = []
    for part in value.split(","):
        low, dash, high = part.strip().partition("-")
        if not low.isdigit() or (dash and (not high.isdigit() or int(high) < int(low))):
            raise ConfigError(f"{VARIABLE}: got {raw.strip()!r}, {_WANT}")
        cpus.extend(range(int(low), int(high or low) + 1))
    missing = sorted(set(cpus) - set(allowed))
    if missing:
        raise ConfigError(
            f"{VARIABLE}: CPU {', '.join(map(str, missing))} not available to this process"
            f" (available: {', '.join(map(str, allowed))})"
        )
    return tuple(dict.fromkeys(cpus))  # in the order given, each once


def cpu_for(affinity: Sequence[int], process_number: int) -> int:
    """The CPU of server process process_number (1-based) under affinity (non-empty)."""
    return affinity[(process_number - 1) % len(affinity)]


def cpus_of(affinity: Sequence[int], processes: int) -> list[int]:
    """The CPUs of server processes 1..processes under affinity, in order ([] when not pinned)."""
    return [cpu_for(affinity, number) for number in range(1, processes + 1)] if affinity else []


def pin_this_process(cpu: int) -> None:
    """Puts every thread of this process on cpu; threads started later inherit it from their
    creator. Child processes started later inherit it too, so start those first."""
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(ProcessLookupError):  # the thread ended since the listing
            os.sched_setaffinity(int(task.name), {cpu})
