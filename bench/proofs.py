"""Rows of the verifiable log for bench.run: how long the latest checkpoint takes to cover the
loaded log (checkpoint lag), and the latency of the three proof RPCs at the log's size."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import grpc

from audit.v1 import log_service_pb2 as lpb
from audit.v1 import log_service_pb2_grpc
from bench.measure import percentile, repeat
from bench.table import Row, ms


def checkpoint_lag(log: log_service_pb2_grpc.LogServiceStub, size: int, timeout: float = 120.0) -> float:
    """Seconds from now until a signed checkpoint covers size events."""
    start = time.monotonic()
    while log.GetLogInfo(lpb.GetLogInfoRequest(), timeout=30).tree_size < size:
        if time.monotonic() - start > timeout:
            raise RuntimeError(f"no checkpoint covered {size:,} events within {timeout:.0f} s")
        time.sleep(0.05)
    return time.monotonic() - start


def bench_proofs(channel: grpc.Channel, size: int, repeats: int, lag: float) -> list[Row]:
    log = log_service_pb2_grpc.LogServiceStub(channel)
    size = log.GetLogInfo(lpb.GetLogInfoRequest(), timeout=30).tree_size
    draw = random.Random(16)
    calls: dict[str, Callable[[], object]] = {
        "GetCheckpoint (latest)": lambda: log.GetCheckpoint(lpb.GetCheckpointRequest(), timeout=30),
        "GetInclusionProof (random event, latest checkpoint)": lambda: log.GetInclusionProof(
            lpb.GetInclusionProofRequest(sequence=draw.randrange(size)), timeout=30
        ),
        "GetConsistencyProof (random first, latest checkpoint)": lambda: log.GetConsistencyProof(
            lpb.GetConsistencyProofRequest(first=draw.randrange(1, size + 1)), timeout=30
        ),
    }
    rows = [Row("Checkpoint lag after the AppendEvents load", f"{lag:.2f} s", "", "", "≤ 2 s", lag <= 2.0)]
    for name, call in calls.items():
        latencies = repeat(call, repeats)
        p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
        rows.append(
            Row(
                f"{name} at {size:,} events",
                f"p50 {ms(p50)}, p99 {ms(p99)}",
                "",
                "",
                "p99 ≤ 10 ms",
                p99 <= 0.010,
            )
        )
    return rows
