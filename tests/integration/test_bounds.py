"""What one caller may hold is bounded: stalled streams, queued exports and big appends get
RESOURCE_EXHAUSTED or are ended, while appends, reads and readiness keep working."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
from google.protobuf import struct_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from audit.v1 import (
    audit_service_pb2,
    audit_service_pb2_grpc,
    event_pb2,
    export_service_pb2,
    export_service_pb2_grpc,
    health_service_pb2,
    health_service_pb2_grpc,
)
from auditlog.app import Service, create_service
from auditlog.export.runner import RunnerSettings
from tests.fix_server import append_padded, search_backends, server_config, stop_service

# Stalled streams opened by the tests: as many as the connection pool had before streams were bounded.
STALLED = 16


def start(database_url: str, tmp_path: Path, **limits: Any) -> Service:
    config = dataclasses.replace(server_config(tmp_path), **limits)
    return create_service(
        config, database_url=database_url, health_interval=0.2, export_settings=RunnerSettings(workers=0)
    )


@pytest.fixture
def make_service(database_url: str, tmp_path: Path) -> Iterator[Callable[..., Service]]:
    started: list[Service] = []

    def make(**limits: int) -> Service:
        started.append(start(database_url, tmp_path, **limits))
        return started[-1]

    yield make
    for svc in started:
        stop_service(svc, database_url)


def wait_for(
    condition: Callable[[], bool], seconds: float = 15, what: Callable[[], str] = lambda: ""
) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"condition not reached in time {what()}"
        time.sleep(0.1)


def open_stalled_searches(target: str, count: int) -> tuple[list[object], list[object]]:
    """count searches on channels of their own (separate clients), each read for one message and
    then left unread; returns what keeps them open (channels and calls) and, per search, its first
    message or its RpcError."""
    held: list[object] = []
    firsts: list[object] = []
    for _ in range(count):
        channel = grpc.insecure_channel(target)
        call = audit_service_pb2_grpc.AuditServiceStub(channel).SearchEvents(
            audit_service_pb2.SearchEventsRequest(), timeout=120
        )
        held += [channel, call]
        try:
            firsts.append(next(call))
        except grpc.RpcError as err:
            firsts.append(err)
    return held, firsts


def test_stalled_searches_leave_reads_readiness_and_appends_working(
    make_service: Callable[..., Service], database_url: str
) -> None:
    svc = make_service(max_streams=2, stream_idle_seconds=600)
    target = f"127.0.0.1:{svc.port}"
    # ~18 MB of matches: far more than the flow-control windows, so each search stalls mid-stream.
    append_padded(target, 3_000, pad=6_000)
    held, firsts = open_stalled_searches(target, STALLED)
    try:
        opened = [f for f in firsts if isinstance(f, audit_service_pb2.SearchEventsResponse)]
        refused = [f for f in firsts if isinstance(f, grpc.RpcError)]
        # Every search that got its first message holds a connection, its transaction open.
        states: list[str] = []

        def all_waiting_on_their_callers() -> bool:
            states[:] = [s for _, s in search_backends(database_url)]
            return states == ["idle in transaction"] * len(opened)

        # Generous: a loaded machine may take a while to fill the flow-control windows.
        wait_for(all_waiting_on_their_callers, seconds=45, what=lambda: f"search backends {states}")
        assert len(opened) == 2
        assert {f.code() for f in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
        assert "too many open streams" in refused[0].details()
        with grpc.insecure_channel(target) as channel:
            audit = audit_service_pb2_grpc.AuditServiceStub(channel)
            listed = audit.ListEvents(audit_service_pb2.ListEventsRequest(page_size=5), timeout=3)
            assert len(listed.events) == 5
            assert audit.GetStats(audit_service_pb2.GetStatsRequest(), timeout=3).total_events == 3_000
            created = audit.CreateEvent(
                audit_service_pb2.CreateEventRequest(
                    event=event_pb2.EventInput(event_type="still.writing", action="a")
                ),
                timeout=3,
            )
            assert created.sequence == 3_000
            ready = health_service_pb2_grpc.HealthServiceStub(channel).Ready(
                health_service_pb2.ReadyRequest(), timeout=3
            )
            assert ready.status == "ready"
            time.sleep(0.5)  # a few rounds of the health monitor
            checked = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=3)
            assert checked.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        for item in held:
            if isinstance(item, grpc.Channel):
                item.close()


def test_a_stalled_search_is_ended_after_the_idle_time(
    make_service: Callable[..., Service], database_url: str
) -> None:
    svc = make_service(max_streams=1, stream_idle_seconds=1)
    target = f"127.0.0.1:{svc.port}"
    append_padded(target, 3_000, pad=6_000)
    with grpc.insecure_channel(target) as channel:
        call = audit_service_pb2_grpc.AuditServiceStub(channel).SearchEvents(
            audit_service_pb2.SearchEventsRequest(), timeout=120
        )
        assert next(call).events[0].sequence == 0
        stalled_at = time.monotonic()
        assert search_backends(database_url)
        # The server ends the stream and releases its connection (the transaction ends).
        wait_for(lambda: all(state == "idle" for _, state in search_backends(database_url)), seconds=10)
        assert time.monotonic() - stalled_at >= 1
        with pytest.raises(grpc.RpcError) as ended:
            for _ in call:
                pass
        assert ended.value.code() == grpc.StatusCode.CANCELLED
    # Its slot is free again: a new search runs to the end.
    _, firsts = open_stalled_searches(target, 1)
    assert isinstance(firsts[0], audit_service_pb2.SearchEventsResponse)


def test_readiness_does_not_need_a_pooled_connection(make_service: Callable[..., Service]) -> None:
    svc = make_service()
    held = [svc.pool.getconn() for _ in range(svc.pool.max_size)]
    try:
        with grpc.insecure_channel(f"127.0.0.1:{svc.port}") as channel:
            ready = health_service_pb2_grpc.HealthServiceStub(channel).Ready(
                health_service_pb2.ReadyRequest(), timeout=3
            )
        assert ready.status == "ready"
    finally:
        for conn in held:
            svc.pool.putconn(conn)


def test_export_jobs_beyond_the_cap_get_resource_exhausted(make_service: Callable[..., Service]) -> None:
    svc = make_service(max_export_jobs=2)  # no export workers: jobs stay pending
    with grpc.insecure_channel(f"127.0.0.1:{svc.port}") as channel:
        exports = export_service_pb2_grpc.ExportServiceStub(channel)
        request = export_service_pb2.CreateExportRequest(
            export=export_service_pb2.ExportSpec(job_name="all", export_format="csv"), requested_by="t"
        )
        for _ in range(2):
            assert exports.CreateExport(request, timeout=5).status == "pending"
        with pytest.raises(grpc.RpcError) as refused:
            exports.CreateExport(request, timeout=5)
        listed = exports.ListExports(export_service_pb2.ListExportsRequest(), timeout=5)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert refused.value.details() == (
        "too many export jobs: got 2 pending or running, want fewer; retry when one has finished"
    )
    assert len(listed.exports) == 2


def big_append(size: int) -> audit_service_pb2.AppendEventsRequest:
    """About size bytes of events (60 KB of details each)."""
    events = []
    for i in range(size // 60_000):
        details = struct_pb2.Struct()
        details.update({"pad": "x" * 60_000, "i": i})
        events.append(event_pb2.EventInput(event_type="big", action="a", details=details))
    return audit_service_pb2.AppendEventsRequest(events=events)


def test_appends_beyond_the_byte_cap_get_resource_exhausted(
    make_service: Callable[..., Service], database_url: str
) -> None:
    svc = make_service(max_append_bytes=2 << 20, append_threads=4)
    request = big_append(900_000)
    with psycopg.connect(database_url) as owner, grpc.insecure_channel(f"127.0.0.1:{svc.port}") as channel:
        # The head row locked: the appends that are let in wait in the sequencer, bytes held.
        owner.execute("SELECT 1 FROM log_head WHERE id = 1 FOR UPDATE")
        audit = audit_service_pb2_grpc.AuditServiceStub(channel)
        calls = [audit.AppendEvents.future(request, timeout=30) for _ in range(4)]
        wait_for(lambda: sum(c.done() for c in calls) == 2, seconds=10)
        refused = [c for c in calls if c.done()]
        assert {c.code() for c in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
        assert "AppendEvents request bytes in flight" in refused[0].details()
        owner.rollback()
        accepted = [c.result() for c in calls if c not in refused]
    assert sorted(len(r.events) for r in accepted) == [15, 15]
    assert accepted[0].events[0].sequence in (0, 15)


def test_appends_beyond_their_threads_get_resource_exhausted_while_other_calls_answer(
    make_service: Callable[..., Service], database_url: str
) -> None:
    # The byte cap out of the way: only the calls' own threads bound them here.
    svc = make_service(append_threads=2, append_waiting=1, max_append_bytes=1 << 30)
    request = big_append(900_000)
    with psycopg.connect(database_url) as owner, grpc.insecure_channel(f"127.0.0.1:{svc.port}") as channel:
        # The head row locked: 2 appends hold their threads in the sequencer, 1 waits for a thread.
        owner.execute("SELECT 1 FROM log_head WHERE id = 1 FOR UPDATE")
        audit = audit_service_pb2_grpc.AuditServiceStub(channel)
        # More than the server's 32 RPC threads, which other calls would otherwise wait behind.
        calls = [audit.AppendEvents.future(request, timeout=60) for _ in range(40)]
        wait_for(lambda: sum(c.done() for c in calls) == 37, seconds=20)
        refused = [c for c in calls if c.done()]
        assert {c.code() for c in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
        assert refused[0].details() == (
            "too many AppendEvents calls: got 2 running and 1 waiting, want fewer; retry later"
        )
        # Reads and readiness answer while the appends wait.
        assert audit.GetStats(audit_service_pb2.GetStatsRequest(), timeout=3).total_events == 0
        assert not audit.ListEvents(audit_service_pb2.ListEventsRequest(), timeout=3).events
        ready = health_service_pb2_grpc.HealthServiceStub(channel).Ready(
            health_service_pb2.ReadyRequest(), timeout=3
        )
        assert ready.status == "ready"
        time.sleep(0.5)
        assert sum(c.done() for c in calls) == 37
        owner.rollback()
        accepted = [c.result() for c in calls if c not in refused]
        created = audit.CreateEvent(
            audit_service_pb2.CreateEventRequest(event=event_pb2.EventInput(event_type="after", action="a")),
            timeout=5,
        )
    assert sorted(len(r.events) for r in accepted) == [15, 15, 15]
    assert created.sequence == 45
    # Their slots are free again: the next append runs.
    with grpc.insecure_channel(f"127.0.0.1:{svc.port}") as channel:
        again = audit_service_pb2_grpc.AuditServiceStub(channel).AppendEvents(request, timeout=10)
    assert again.events[0].sequence == 46


def test_stalled_downloads_leave_every_other_rpc_working(database_url: str, tmp_path: Path) -> None:
    config = dataclasses.replace(server_config(tmp_path), max_streams=2, stream_idle_seconds=600)
    svc = create_service(config, database_url=database_url, health_interval=0.2)
    held: list[Any] = []
    try:
        target = f"127.0.0.1:{svc.port}"
        # ~12 MB of CSV: far more than the flow-control windows, so each download stalls mid-file.
        append_padded(target, 2_000, pad=6_000)
        with grpc.insecure_channel(target) as channel:
            exports = export_service_pb2_grpc.ExportServiceStub(channel)
            job = exports.CreateExport(
                export_service_pb2.CreateExportRequest(
                    export=export_service_pb2.ExportSpec(job_name="big", export_format="csv")
                ),
                timeout=10,
            )
            get = export_service_pb2.GetExportRequest(id=job.id)
            wait_for(lambda: exports.GetExport(get, timeout=5).status == "completed", seconds=90)
        firsts: list[Any] = []
        for _ in range(32):  # as many as the server has RPC threads
            own = grpc.insecure_channel(target)
            call = export_service_pb2_grpc.ExportServiceStub(own).DownloadExportContent(
                export_service_pb2.DownloadExportContentRequest(id=job.id), timeout=120
            )
            held += [own, call]
            try:
                firsts.append(next(call))
            except grpc.RpcError as err:
                firsts.append(err)
        refused = [f for f in firsts if isinstance(f, grpc.RpcError)]
        assert len(firsts) - len(refused) == 2
        assert {f.code() for f in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
        with grpc.insecure_channel(target) as channel:
            audit = audit_service_pb2_grpc.AuditServiceStub(channel)
            created = audit.CreateEvent(
                audit_service_pb2.CreateEventRequest(
                    event=event_pb2.EventInput(event_type="still", action="a")
                ),
                timeout=3,
            )
            assert created.sequence == 2_000
            assert audit.GetStats(audit_service_pb2.GetStatsRequest(), timeout=3).total_events == 2_001
            ready = health_service_pb2_grpc.HealthServiceStub(channel).Ready(
                health_service_pb2.ReadyRequest(), timeout=3
            )
            assert ready.status == "ready"
    finally:
        for item in held:
            if isinstance(item, grpc.Channel):
                item.close()
        svc.stop(grace=2)
