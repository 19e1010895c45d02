"""What audited reads cost readers: `.venv/bin/python -m bench.read_audit [--events N] [--seconds S]`.

Starts an embedded PostgreSQL, loads N events, and two server processes on it, each binding one
principal (role auditor) to every call as the authentication interceptor would: one with
AUDITLOG_AUDIT_READS on, one with it off. Client processes then call ListEvents (first page of 50)
and GetEvent as fast as they can against each in turn, for S seconds a round; the table gives the
read throughput of each, the median over rounds, and the ratio (the bar: audited reads keep at
least 90% of the throughput).
"""

from __future__ import annotations

import argparse
import functools
import logging
import multiprocessing
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import psycopg

from audit.v1 import audit_service_pb2 as pb
from audit.v1 import audit_service_pb2_grpc, event_pb2
from bench.run import embedded_database, spawned_server

PRINCIPAL = "key:bench-reader"


class _BindPrincipal(grpc.ServerInterceptor):  # type: ignore[misc]
    """Every unary call runs as PRINCIPAL (the server side of this benchmark only)."""

    def intercept_service(self, continuation: Callable[..., Any], details: grpc.HandlerCallDetails) -> Any:
        from auditlog.api.principal import Principal, Role, bind_principal, reset_principal

        handler = continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        inner, principal = handler.unary_unary, Principal(PRINCIPAL, Role.AUDITOR)

        @functools.wraps(inner)  # keeps experimental_thread_pool (api.limits.CallPool)
        def unary(request: Any, context: grpc.ServicerContext) -> Any:
            token = bind_principal(principal)
            try:
                return inner(request, context)
            finally:
                reset_principal(token)

        return handler._replace(unary_unary=unary)


def serve(database_url: str, data_dir: Path, audit_reads: bool) -> int:
    from auditlog.app import create_service
    from auditlog.config import Config
    from auditlog.tuning import settle_server_process

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    config = Config(
        database_url=database_url,
        data_dir=data_dir,
        grpc_host="127.0.0.1",
        grpc_port=0,
        audit_reads=audit_reads,
        principal_rate=1_000_000,  # every client is the one principal: measure reads, not its bound
    )
    service = create_service(config, database_url=database_url, interceptors=[_BindPrincipal()])
    settle_server_process((), 1)
    print(f"PORT {service.port}", flush=True)
    sys.stdin.read()
    service.stop(grace=5)
    return 0


@contextmanager
def server(database_url: str, data_dir: Path, audit_reads: bool) -> Iterator[int]:
    command = [sys.executable, "-m", "bench.read_audit", "--serve", database_url, str(data_dir)]
    command += ["--audit-reads"] if audit_reads else []
    with spawned_server(command) as (_, port):
        yield port


def _client(port: int, seconds: float, event_id: str, start_at: float) -> int:
    """Reads (ListEvents and GetEvent in turn) answered in seconds, from start_at on."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = audit_service_pb2_grpc.AuditServiceStub(channel)
        stub.GetEvent(pb.GetEventRequest(id=event_id), timeout=30)  # connected before the clock starts
        time.sleep(max(0.0, start_at - time.time()))
        calls, end = 0, time.monotonic() + seconds
        try:
            while time.monotonic() < end:
                if calls % 2:
                    stub.GetEvent(pb.GetEventRequest(id=event_id), timeout=30)
                else:
                    stub.ListEvents(pb.ListEventsRequest(page_size=50), timeout=30)
                calls += 1
        except grpc.RpcError as err:  # not picklable: say what it was
            raise RuntimeError(f"read failed: {err.code()} {err.details()}") from None
        return calls


def read_rate(port: int, clients: int, seconds: float, event_id: str) -> float:
    context = multiprocessing.get_context("spawn")
    with context.Pool(clients) as pool:
        start_at = time.time() + 2.0
        counts = pool.starmap(_client, [(port, seconds, event_id, start_at)] * clients)
    return sum(counts) / seconds


def load(port: int, events: int) -> str:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = audit_service_pb2_grpc.AuditServiceStub(channel)
        first = ""
        for start in range(0, events, 1000):
            batch = [
                event_pb2.EventInput(event_type="bench.read", action="a", user_id=f"user-{i % 100:04d}")
                for i in range(start, min(events, start + 1000))
            ]
            answer = stub.AppendEvents(pb.AppendEventsRequest(events=batch), timeout=120)
            first = first or answer.events[0].id
        return first


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.read_audit", description=__doc__)
    parser.add_argument("--events", type=int, default=20_000, help="events loaded first (default 20,000)")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds a round (default 5)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each, in turns (default 3)")
    parser.add_argument("--clients", type=int, default=4, help="client processes (default 4)")
    parser.add_argument("--serve", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--audit-reads", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        return serve(args.serve[0], Path(args.serve[1]), args.audit_reads)
    with tempfile.TemporaryDirectory(prefix="auditlog-bench-reads-") as tmp:
        workdir = Path(tmp)
        with (
            embedded_database(workdir) as url,
            server(url, workdir / "on", True) as on,
            server(url, workdir / "off", False) as off,
        ):
            event_id = load(off, args.events)
            rates: dict[str, list[float]] = {"off": [], "on": []}
            for _ in range(args.rounds):
                for name, port in (("off", off), ("on", on)):
                    rates[name].append(read_rate(port, args.clients, args.seconds, event_id))
                    print(f"  {name}: {rates[name][-1]:,.0f} reads/s", file=sys.stderr, flush=True)
            with psycopg.connect(url) as conn:
                row = conn.execute(
                    "SELECT count(*) FROM audit_events WHERE event_type = 'audit.log.read'"
                ).fetchone()
            audited = row[0] if row else 0
    off_rate, on_rate = statistics.median(rates["off"]), statistics.median(rates["on"])
    ratio = on_rate / off_rate
    print(
        f"| reads ({args.clients} clients, ListEvents 50/page and GetEvent in turn) | reads/s, median of {args.rounds} |"
    )
    print("| --- | --- |")
    print(f"| AUDITLOG_AUDIT_READS=off | {off_rate:,.0f} |")
    print(
        f"| AUDITLOG_AUDIT_READS=on | {on_rate:,.0f} ({ratio:.1%} of off; bar ≥ 90%: {'pass' if ratio >= 0.9 else 'FAIL'}) |"
    )
    print(f"audit.log.read events appended: {audited:,}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
