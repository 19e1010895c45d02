"""TailEvents: replay from a sequence, then follow new events as they commit, in order, across a
server restart and across server processes; over gRPC and as a streamed JSON array over REST."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import threading
import time
from pathlib import Path

import grpc
import pytest

from audit.v1 import audit_service_pb2 as pb
from audit.v1 import audit_service_pb2_grpc, event_pb2
from auditlog.app import Service, create_service
from auditlog_client import AuditClient, AuditLogClientError
from auditlog_client.client import event_input
from tests.fix_db import login_url
from tests.fix_gateway import ChunkedStream, RestStack
from tests.fix_serve import wait_until
from tests.fix_server import server_config


def collect(
    client: AuditClient, into: list[int], stop: threading.Event, **kwargs: object
) -> threading.Thread:
    def run() -> None:
        # The test's end closes the client under the tail: whatever it raises then is not the test's.
        with contextlib.suppress(Exception):
            for event in client.tail_events(reconnect_delay=0.1, **kwargs):  # type: ignore[arg-type]
                into.append(event.sequence)
                if stop.is_set():
                    return

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_tail_replays_from_a_sequence_then_follows_new_events(client: AuditClient) -> None:
    for i in range(5):
        client.create_event(event_type="tail.test", action="before", resource_id=str(i))
    seen: list[int] = []
    stop = threading.Event()
    collect(client, seen, stop, from_sequence=2)
    wait_until(lambda: len(seen) == 3)
    client.append_events([pb_event(i) for i in range(4)])
    client.create_event(event_type="tail.test", action="after")
    wait_until(lambda: len(seen) == 8)
    stop.set()
    assert seen == list(range(2, 10))


def pb_event(i: int) -> event_pb2.EventInput:
    return event_input(event_type="tail.test", action="batch", resource_id=str(i))


def test_tail_without_a_start_sends_only_new_events(client: AuditClient) -> None:
    client.create_event(event_type="tail.test", action="old")
    seen: list[int] = []
    collect(client, seen, threading.Event())
    time.sleep(0.5)  # the tail is open: nothing of the past comes
    assert seen == []
    new = client.create_event(event_type="tail.test", action="new")
    wait_until(lambda: seen == [new.sequence])


def test_tail_filters_as_list_events_and_stops_at_to_sequence(client: AuditClient) -> None:
    for i in range(6):
        client.create_event(event_type="tail.a" if i % 2 else "tail.b", action="x", resource_id=str(i))
    events = list(client.tail_events(from_sequence=0, follow=False, filters={"event_type": "tail.a"}))
    assert [e.sequence for e in events] == [1, 3, 5]
    assert {e.event_type for e in events} == {"tail.a"}


def test_tail_refuses_a_negative_start(stub: audit_service_pb2_grpc.AuditServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        next(iter(stub.TailEvents(pb.TailEventsRequest(from_sequence=-1))))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "from_sequence: got -1, want 0 or more" in (caught.value.details() or "")


def test_tail_beyond_the_bound_is_refused_at_once(client: AuditClient, target: str) -> None:
    client.create_event(event_type="tail.bound", action="x")
    with grpc.insecure_channel(target) as channel:
        stub = audit_service_pb2_grpc.AuditServiceStub(channel)
        # Config.max_tails of them.
        opened = [stub.TailEvents(pb.TailEventsRequest(from_sequence=0)) for _ in range(4)]
        for call in opened:
            next(call)  # each is open: it sent the event
        with pytest.raises(grpc.RpcError) as caught:
            next(stub.TailEvents(pb.TailEventsRequest()))
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        for call in opened:
            call.cancel()


def test_tail_resumes_across_a_server_restart_without_loss_or_duplicates(
    database_url: str, test_login: str, tmp_path: Path
) -> None:
    runtime = login_url(database_url, test_login)
    config = server_config(tmp_path)
    first = create_service(config, database_url=runtime, migration_url=database_url, health_interval=0.2)
    target = f"127.0.0.1:{first.port}"
    acknowledged: list[int] = []
    writing = threading.Event()
    writing.set()

    def writer() -> None:
        with AuditClient(target, timeout=5) as client:
            while writing.is_set():
                with contextlib.suppress(AuditLogClientError):
                    acknowledged.append(client.create_event(event_type="tail.restart", action="w").sequence)
                time.sleep(0.01)

    seen: list[int] = []
    stop = threading.Event()
    with AuditClient(target) as tail_client:
        collect(tail_client, seen, stop, from_sequence=0)
        thread = threading.Thread(target=writer, daemon=True)
        thread.start()
        wait_until(lambda: len(seen) >= 20)
        started = time.monotonic()
        first.stop(grace=10)
        # The open tail does not hold the drain for its grace: it ends (UNAVAILABLE) at once.
        assert time.monotonic() - started < 5
        before_restart = len(seen)
        second = create_service(
            dataclasses.replace(config, grpc_port=first.port), database_url=runtime, migrate=False
        )
        try:
            wait_until(lambda: len(acknowledged) >= before_restart + 20, timeout=30)
            writing.clear()
            thread.join(10)
            last = max(acknowledged)
            wait_until(lambda: bool(seen) and seen[-1] >= last, timeout=30)
            stop.set()
        finally:
            second.stop(grace=2)
    assert seen[: last + 1] == list(range(last + 1))
    assert len(seen) > before_restart


def test_events_appended_by_another_server_process_reach_the_tail(
    service: Service, client: AuditClient, database_url: str, test_login: str, tmp_path: Path
) -> None:
    other = create_service(
        server_config(tmp_path / "other"), database_url=login_url(database_url, test_login), migrate=False
    )
    try:
        seen: list[int] = []
        collect(client, seen, threading.Event())
        time.sleep(0.3)
        with AuditClient(f"127.0.0.1:{other.port}") as other_client:
            sequences = [
                other_client.create_event(event_type="tail.other", action="w").sequence for _ in range(5)
            ]
        wait_until(lambda: seen == sequences)
    finally:
        other.stop(grace=2)


def test_rest_tail_streams_a_json_array_of_new_events(rest_fresh: RestStack) -> None:
    with AuditClient(rest_fresh.grpc_target) as client:
        for i in range(3):
            client.create_event(event_type="tail.rest", action="x", resource_id=str(i))
        stream = ChunkedStream(rest_fresh.port, "/api/v1/audit:tail?from_sequence=1&event_type=tail.rest")
        try:
            assert b"200" in stream.status_line
            body = b""
            chunks = stream.chunks()
            while body.count(b'"sequence"') < 2:
                body += next(chunks)
            client.create_event(event_type="tail.rest", action="y")
            client.create_event(event_type="other", action="y")
            client.create_event(event_type="tail.rest", action="z")
            while body.count(b'"sequence"') < 4:
                body += next(chunks)
        finally:
            stream.close()
    messages = json.loads(body + b"]")  # a tail never ends: close the array it started
    events = [event for message in messages for event in message["events"]]
    assert [(e["sequence"], e["action"]) for e in events] == [("1", "x"), ("2", "x"), ("3", "y"), ("5", "z")]
