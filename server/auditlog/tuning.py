"""What a gRPC server process sets for itself once it serves: `auditlog serve` with one process,
each worker of AUDITLOG_WORKERS, and the benchmark's server, alike.

- **The cyclic garbage collector**, tuned. By default it collects every 700 allocations and its
  full collections walk every object the process holds, while a request's thousand events are
  short-lived and acyclic (reference counting frees them). gc.freeze() moves what exists once the
  service started (modules, protobuf descriptors, the service itself) out of every collection,
  and the thresholds collect the young generation every 50,000 allocations and the older ones
  less often. Cyclic garbage still gets collected, only later; what waits for it is bounded by the
  thresholds.
- **CPU pinning** (AUDITLOG_CPU_AFFINITY, see auditlog.affinity).
"""

from __future__ import annotations

import gc
from collections.abc import Sequence

from auditlog.affinity import cpu_for, pin_this_process

# gc.set_threshold(young, middle, old): Python's defaults are (700, 10, 10).
GC_THRESHOLDS = (50_000, 20, 100)


def settle_server_process(cpu_affinity: Sequence[int], process_number: int) -> int | None:
    """Tunes the garbage collector and, when cpu_affinity is set, pins this process (all its
    threads) to server process process_number's CPU, which it returns (None when not pinned).
    Call once the service serves, and after starting any child process (a child inherits the
    pinning)."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    if not cpu_affinity:
        return None
    cpu = cpu_for(cpu_affinity, process_number)
    pin_this_process(cpu)
    return cpu
