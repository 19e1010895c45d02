"""VerifyChain alone, for A/B work on verification: `.venv/bin/python -m bench.verify_only`.

Keeps a log of --events events in --data-dir across runs (built once, written straight to the table
with the product's own record builder, the benchmark's event shapes and one COPY, which takes far
less time than loading through AppendEvents), then starts the server in its own process, as
`bench.run` does, and times --repeat whole-log VerifyChain calls at the client, with the server's
peak RSS during each. It measures nothing else; `bench.run` remains the benchmark of record.
"""

from __future__ import annotations

import argparse
import logging
import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import psycopg

from audit.v1 import audit_service_pb2 as pb
from audit.v1 import audit_service_pb2_grpc
from auditlog.domain.canonical import ZERO_HASH
from auditlog.domain.chain import build_record
from auditlog.domain.event import NewEvent
from auditlog.storage.events import _COPY, row_from_record
from auditlog.storage.migrations import apply_migrations
from bench.run import embedded_database, server_process, verify
from bench.workload import EVENT_TYPES, RISK_LEVELS, USERS

_START = datetime(2026, 1, 1, tzinfo=UTC)


def bench_event(index: int) -> NewEvent:
    """The index-th event of bench.workload, as the server reads it (Struct numbers are doubles)."""
    return NewEvent(
        event_type=EVENT_TYPES[index % len(EVENT_TYPES)],
        user_id=f"user-{index % USERS:04d}",
        action="performed",
        resource_type="resource",
        resource_id=f"res-{index % 10_007}",
        details={
            "path": f"/api/v1/resources/{index % 997}",
            "status": 200.0,
            "bytes": float(1_024 + index % 4_096),
        },
        risk_level=RISK_LEVELS[(index // 7) % len(RISK_LEVELS)],
        ip_address=f"10.0.{index % 256}.{(index // 256) % 256}",
        user_agent="bench-client/1.0 (grpc-python)",
        session_id=f"sess-{index % 50_000:05d}",
        request_id=f"verify-bench-{index}",
    )


def ensure_log(url: str, events: int) -> None:
    apply_migrations(url)
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT sequence, chain_hash FROM log_head WHERE id = 1").fetchone()
        assert row is not None
        head, prev = row[0], bytes(row[1])
        if head + 1 >= events:
            return
        record = None
        with conn.cursor() as cur, cur.copy(_COPY) as copy:
            for sequence in range(head + 1, events):
                record = build_record(
                    bench_event(sequence),
                    sequence=sequence,
                    recorded_at=_START + timedelta(microseconds=37 * sequence),
                    prev=prev if sequence else ZERO_HASH,
                    event_id=uuid.UUID(bytes=os.urandom(16), version=4),
                )
                copy.write_row(row_from_record(record))
                prev = record.chain_hash
        assert record is not None
        conn.execute(
            "UPDATE log_head SET sequence = %s, chain_hash = %s, recorded_at = %s WHERE id = 1",
            (record.sequence, record.chain_hash, record.recorded_at),
        )
        conn.commit()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE audit_events")  # as a loaded, settled table would be


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.verify_only", description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000, help="log size (default 1,000,000)")
    parser.add_argument("--repeat", type=int, default=3, help="VerifyChain calls (default 3)")
    parser.add_argument(
        "--data-dir", type=Path, default=Path("/tmp/auditlog-verify-bench"), help="kept between runs"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    with embedded_database(args.data_dir) as url:
        ensure_log(url, args.events)
        with (
            server_process(url, args.data_dir) as (pid, port),
            grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
        ):
            stub = audit_service_pb2_grpc.AuditServiceStub(channel)
            stub.GetStats(pb.GetStatsRequest(), timeout=30)
            for _ in range(args.repeat):
                per_s, rss, checked = verify(stub, pid)
                print(
                    f"VerifyChain over {checked:,} events: {per_s:,.0f} ev/s, server peak RSS {rss:.0f} MiB"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
