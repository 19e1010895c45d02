"""Rows of the verifiable log for bench.run: how long the latest checkpoint takes to cover the
loaded log (checkpoint lag), and the latency of the three proof RPCs at the log's size."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import grpc
import psycopg

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


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.proofs [--events N]`: the proof rows alone, on a log of N synthetic leaves
    inserted by SQL (proofs read only leaf hashes, so the events' contents do not matter)."""
    import argparse
    import tempfile
    from pathlib import Path

    from auditlog.app import create_service
    from auditlog.config import Config
    from bench.run import embedded_database

    parser = argparse.ArgumentParser(prog="python -m bench.proofs")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=500)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="auditlog-proofs-") as tmp, embedded_database(Path(tmp)) as url:
        Path(tmp).chmod(0o755)
        config = Config(
            database_url=None,
            data_dir=Path(tmp) / "data",
            grpc_host="127.0.0.1",
            grpc_port=0,
            checkpoint_interval=3600,
        )
        service = create_service(config, database_url=url)
        try:
            with psycopg.connect(url) as conn:
                conn.execute(_SYNTHETIC, (args.events,))
                conn.execute(
                    "UPDATE log_head SET sequence = %s, chain_hash = sha256('x'::bytea)", (args.events - 1,)
                )
                conn.commit()
            assert service.checkpointer is not None
            started = time.monotonic()
            service.checkpointer.tick()
            built = time.monotonic() - started
            with grpc.insecure_channel(f"127.0.0.1:{service.port}") as channel:
                rows = bench_proofs(channel, args.events, args.repeats, 0.0)[1:]
        finally:
            service.stop(grace=2)
    print(f"tiles and the first checkpoint over {args.events:,} leaves: {built:.1f} s")
    for row in rows:
        print(f"{row.measurement}: {row.result} ({row.target}: {'met' if row.met else 'NOT met'})")
    return 0


_SYNTHETIC = """
INSERT INTO audit_events
SELECT i, gen_random_uuid(), 'bench.proof', '', 'a', '', '', '{}'::jsonb, 'low', '', '', '', '', NULL,
       now(), sha256(int8send(i)), sha256('x'::bytea), sha256('x'::bytea)
FROM generate_series(0, %s - 1) AS i
"""

if __name__ == "__main__":
    raise SystemExit(main())
