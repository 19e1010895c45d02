"""Resident memory of the server while it exports a large log (issue 4: growth < 150 MB).

    .venv/bin/python -m bench.export_memory                 # 1,000,000 events, every format
    .venv/bin/python -m bench.export_memory --events 100000 --formats csv

Loads the events straight into a fresh embedded PostgreSQL with COPY (hashes computed with the
domain functions, so the chain is valid), starts the server in a child process, runs one export per
format and samples the child's VmRSS every 50 ms. Growth is the peak during the export less the
RSS just before it. Exits 1 when any growth reaches the limit. The work directory (database and
files, about 3 GB for 1,000,000 events) is printed and left for inspection; delete it afterwards.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import psycopg

from audit.v1 import export_service_pb2, export_service_pb2_grpc
from auditlog.domain.canonical import ZERO_HASH
from auditlog.domain.chain import build_record
from auditlog.domain.event import EventRecord, NewEvent
from auditlog.storage.postgres.migrations import apply_migrations
from auditlog.storage.postgres.writer import AppendTransaction

LIMIT_MB = 150.0
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def load_events(url: str, count: int) -> None:
    """count events with valid hashes, in one COPY, and the log head after them."""
    prev = ZERO_HASH
    started = time.monotonic()

    def records() -> Iterator[tuple[EventRecord, None]]:
        nonlocal prev
        for i in range(count):
            event = NewEvent(
                event_type=("user.login", "record.update", "permission.change")[i % 3],
                action="successful_login" if i % 2 else "=cmd|' /C calc'!A0",
                user_id=f"user{i % 5000}",
                resource_type="authentication",
                resource_id=f"session_{i}",
                details={"login_method": "password", "device_type": "web", "attempt": float(i % 7)},
                risk_level=("low", "medium", "high", "critical")[i % 4],
                ip_address=f"10.{i % 256}.{(i // 256) % 256}.1",
                user_agent="Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36",
                session_id=f"s{i // 10}",
                request_id=f"bench-{i}",
                occurred_at=T0 + timedelta(seconds=i) if i % 2 else None,
            )
            record = build_record(
                event, sequence=i, recorded_at=T0 + timedelta(seconds=i), prev=prev, event_id=uuid.uuid4()
            )
            yield record, None
            prev = record.chain_hash
            if i and i % 200_000 == 0:
                print(f"  loaded {i:,} events ({time.monotonic() - started:.0f}s)", flush=True)

    with psycopg.connect(url) as conn:
        AppendTransaction(conn).insert(records())
        conn.execute(
            "UPDATE log_head SET sequence = %s, chain_hash = %s, recorded_at = %s WHERE id = 1",
            (count - 1, prev, T0 + timedelta(seconds=count - 1)),
        )
    print(f"loaded {count:,} events in {time.monotonic() - started:.0f}s", flush=True)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def serve(url: str, data_dir: Path) -> int:
    """The child: the real service (one export worker), until stdin closes."""
    from auditlog.app import create_service
    from auditlog.config import Config
    from auditlog.export.runner import RunnerSettings

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    config = Config(database_url=url, data_dir=data_dir, grpc_host="127.0.0.1", grpc_port=0)
    service = create_service(config, database_url=url, export_settings=RunnerSettings(workers=1))
    print(f"PORT {service.port}", flush=True)
    sys.stdin.read()
    service.stop(grace=5)
    return 0


def measure(
    pid: int, stub: export_service_pb2_grpc.ExportServiceStub, export_format: str
) -> dict[str, float]:
    baseline = rss_mb(pid)
    peak = baseline
    started = time.monotonic()
    job = stub.CreateExport(
        export_service_pb2.CreateExportRequest(
            export=export_service_pb2.ExportSpec(
                job_name=f"bench {export_format}", export_format=export_format
            )
        )
    )
    while True:
        peak = max(peak, rss_mb(pid))
        job = stub.GetExport(export_service_pb2.GetExportRequest(id=job.id))
        if job.status in ("completed", "failed"):
            break
        time.sleep(0.05)
    if job.status != "completed":
        raise RuntimeError(f"{export_format} export failed: {job.error}")
    return {
        "rows": job.rows_written,
        "seconds": time.monotonic() - started,
        "file_mb": job.file_size / 1024 / 1024,
        "baseline_mb": baseline,
        "peak_mb": peak,
        "growth_mb": peak - baseline,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--formats", default="csv,json,xlsx")
    parser.add_argument("--serve", nargs=2, metavar=("URL", "DATA_DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve[0], Path(args.serve[1]))

    from auditlog.storage.postgres.database import start_embedded

    work = Path(tempfile.mkdtemp(prefix="export-memory-"))
    print(f"work directory: {work}", flush=True)
    url = start_embedded(work / "pg")
    apply_migrations(url)
    load_events(url, args.events)
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.export_memory", "--serve", url, str(work / "data")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdin is not None
    port = int(child.stdout.readline().split()[1])
    failed = False
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = export_service_pb2_grpc.ExportServiceStub(channel)
            print(
                f"{'format':<6} {'rows':>9} {'seconds':>8} {'file MB':>8} {'RSS before':>10} {'peak':>7} {'growth MB':>9}"
            )
            for export_format in args.formats.split(","):
                r = measure(child.pid, stub, export_format)
                failed |= r["growth_mb"] >= LIMIT_MB
                print(
                    f"{export_format:<6} {r['rows']:>9,.0f} {r['seconds']:>8.1f} {r['file_mb']:>8.1f}"
                    f" {r['baseline_mb']:>10.1f} {r['peak_mb']:>7.1f} {r['growth_mb']:>9.1f}",
                    flush=True,
                )
    finally:
        child.stdin.close()
        child.wait(timeout=60)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
