"""Peak resident memory of one server process under the hostile request mixes of issue 14 (ceiling
512 MB), and whether appends, reads and readiness keep answering meanwhile.

    .venv/bin/python -m bench.hostile                  # 100,000 events loaded first
    .venv/bin/python -m bench.hostile --events 20000

Starts a fresh embedded PostgreSQL and the real service (default bounds) in a child process, then
runs each mix and prints the server's peak RSS (VmHWM, reset before each mix) and what the callers
got: 32 concurrent AppendEvents of ~14 MiB; 16 stalled SearchEvents (one message read) with
ListEvents, GetStats, Ready and CreateEvent probed beside them; 100 CreateExport of the whole log
with the CreateEvent rate while they run; all of these at once. Exits 1 when a peak reaches the
ceiling or a probe fails. The work directory is printed and left; delete it afterwards.
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
from google.protobuf import struct_pb2

from audit.v1 import (
    audit_service_pb2,
    audit_service_pb2_grpc,
    event_pb2,
    export_service_pb2,
    export_service_pb2_grpc,
    health_service_pb2,
    health_service_pb2_grpc,
)
from bench.export_memory import load_events
from bench.measure import peak_rss_mib, reset_peak_rss

CEILING_MB = 512.0
_BIG = [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]


def serve(url: str, data_dir: Path) -> int:
    """The child: the real service with its default bounds, until stdin closes."""
    from auditlog.app import create_service
    from auditlog.config import load_config

    config = load_config({"AUDITLOG_DATA_DIR": str(data_dir), "GRPC_HOST": "127.0.0.1", "GRPC_PORT": "0"})
    service = create_service(config, database_url=url)
    print(f"PORT {service.port}", flush=True)
    sys.stdin.read()
    service.stop(grace=5)
    return 0


def code_of(call: Callable[[], object]) -> str:
    try:
        call()
    except grpc.RpcError as err:
        return err.code().name  # type: ignore[no-any-return]
    return "OK"


def big_appends(target: str, count: int = 32, size: int = 14 << 20) -> collections.Counter[str]:
    details = struct_pb2.Struct()
    details.update({"pad": "x" * 60_000})
    request = audit_service_pb2.AppendEventsRequest(
        events=[event_pb2.EventInput(event_type="big", action="a", details=details)] * (size // 60_050)
    )

    def one() -> str:
        with grpc.insecure_channel(target, options=_BIG) as channel:
            stub = audit_service_pb2_grpc.AuditServiceStub(channel)
            return code_of(lambda: stub.AppendEvents(request, timeout=120))

    with ThreadPoolExecutor(count) as pool:
        return collections.Counter(pool.map(lambda _: one(), range(count)))


def stalled_searches(target: str, count: int = 16) -> tuple[list[object], collections.Counter[str]]:
    held: list[object] = []
    codes: collections.Counter[str] = collections.Counter()
    for _ in range(count):
        channel = grpc.insecure_channel(target)
        call = audit_service_pb2_grpc.AuditServiceStub(channel).SearchEvents(
            audit_service_pb2.SearchEventsRequest(), timeout=600
        )
        held += [channel, call]
        codes[code_of(lambda c=call: next(c))] += 1  # type: ignore[misc]
    return held, codes


def probes(target: str) -> dict[str, str]:
    with grpc.insecure_channel(target) as channel:
        audit = audit_service_pb2_grpc.AuditServiceStub(channel)
        health = health_service_pb2_grpc.HealthServiceStub(channel)
        event = event_pb2.EventInput(event_type="probe", action="a")
        return {
            "ListEvents": code_of(lambda: audit.ListEvents(audit_service_pb2.ListEventsRequest(), timeout=5)),
            "GetStats": code_of(lambda: audit.GetStats(audit_service_pb2.GetStatsRequest(), timeout=5)),
            "Ready": code_of(lambda: health.Ready(health_service_pb2.ReadyRequest(), timeout=5)),
            "CreateEvent": code_of(
                lambda: audit.CreateEvent(audit_service_pb2.CreateEventRequest(event=event), timeout=5)
            ),
        }


def create_rate(target: str, seconds: float = 3.0) -> float:
    with grpc.insecure_channel(target) as channel:
        audit = audit_service_pb2_grpc.AuditServiceStub(channel)
        request = audit_service_pb2.CreateEventRequest(
            event=event_pb2.EventInput(event_type="rate", action="a")
        )
        calls, started = 0, time.monotonic()
        while time.monotonic() - started < seconds:
            audit.CreateEvent(request, timeout=10)
            calls += 1
        return calls / (time.monotonic() - started)


def many_exports(target: str, count: int = 100) -> collections.Counter[str]:
    with grpc.insecure_channel(target) as channel:
        exports = export_service_pb2_grpc.ExportServiceStub(channel)
        request = export_service_pb2.CreateExportRequest(
            export=export_service_pb2.ExportSpec(job_name="hostile", export_format="csv")
        )
        return collections.Counter(
            code_of(lambda: exports.CreateExport(request, timeout=10)) for _ in range(count)
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--serve", nargs=2, metavar=("URL", "DATA_DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve[0], Path(args.serve[1]))

    from auditlog.storage.postgres.database import start_embedded
    from auditlog.storage.postgres.migrations import apply_migrations

    work = Path(tempfile.mkdtemp(prefix="hostile-"))
    print(f"work directory: {work}", flush=True)
    url = start_embedded(work / "pg")
    apply_migrations(url)
    load_events(url, args.events)
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.hostile", "--serve", url, str(work / "data")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdin is not None
    target = f"127.0.0.1:{int(child.stdout.readline().split()[1])}"
    failed = False

    def report(mix: str, outcome: str) -> None:
        nonlocal failed
        peak = peak_rss_mib(child.pid)
        failed |= peak >= CEILING_MB
        print(f"{mix:<34} peak RSS {peak:6.1f} MB   {outcome}", flush=True)
        reset_peak_rss(child.pid)

    try:
        print(f"idle server: RSS {peak_rss_mib(child.pid):.1f} MB; ceiling {CEILING_MB:.0f} MB", flush=True)
        reset_peak_rss(child.pid)
        report("32 AppendEvents of 14 MiB", str(dict(big_appends(target))))
        held, codes = stalled_searches(target)
        probed = probes(target)
        failed |= set(probed.values()) != {"OK"}
        report("16 stalled SearchEvents", f"streams {dict(codes)}; probes {probed}")
        del held
        before = create_rate(target)
        exported = many_exports(target)
        during = create_rate(target)
        report(
            "100 CreateExport (whole log)", f"{dict(exported)}; CreateEvent {before:.0f}/s -> {during:.0f}/s"
        )
        results: dict[str, object] = {}
        threads = [
            threading.Thread(target=lambda: results.update(appends=big_appends(target))),
            threading.Thread(target=lambda: results.update(searches=stalled_searches(target)[1])),
            threading.Thread(target=lambda: results.update(exports=many_exports(target))),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        probed = probes(target)
        failed |= set(probed.values()) != {"OK"}
        report("all of them at once", f"probes {probed}")
    finally:
        child.stdin.close()
        child.wait(timeout=60)
    print("FAILED: a peak reached the ceiling or a probe failed" if failed else "all within bounds")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
