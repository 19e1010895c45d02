"""BatchWriter groups create() calls into AppendEvents: by size, by interval, on flush and close,
and retries UNAVAILABLE with the very same request_ids."""

from __future__ import annotations

import threading
import time

import grpc
import pytest

from audit.v1 import event_pb2
from auditlog_client.batch import BatchWriter
from auditlog_client.errors import InvalidArgument, Unavailable


class FakeServer:
    def __init__(self, fail_first: int = 0, refuse: bool = False) -> None:
        self.calls: list[list[str]] = []
        self.fail_first = fail_first
        self.refuse = refuse
        self.recorded: dict[str, int] = {}
        self.lock = threading.Lock()

    def append(self, events: list[event_pb2.EventInput]) -> list[event_pb2.AuditEvent]:
        with self.lock:
            self.calls.append([e.request_id for e in events])
            if self.refuse:
                raise InvalidArgument(grpc.StatusCode.INVALID_ARGUMENT, "bad")
            if len(self.calls) <= self.fail_first:
                raise Unavailable(grpc.StatusCode.UNAVAILABLE, "restarting")
            out = []
            for e in events:
                sequence = self.recorded.setdefault(e.request_id, len(self.recorded))
                out.append(event_pb2.AuditEvent(sequence=sequence, request_id=e.request_id, action=e.action))
            return out


def test_full_batches_go_at_once_and_the_rest_on_close() -> None:
    server = FakeServer()
    writer = BatchWriter(server.append, max_events=10, interval=60)
    futures = [writer.create(event_type="t", action=f"a{i}") for i in range(25)]
    for future in futures[:20]:
        future.result(timeout=5)  # two full batches, long before the interval
    writer.close()
    assert [len(call) for call in server.calls] == [10, 10, 5]
    assert [f.result().action for f in futures] == [f"a{i}" for i in range(25)]


def test_a_partial_batch_goes_after_the_interval_or_on_flush() -> None:
    server = FakeServer()
    with BatchWriter(server.append, max_events=100, interval=0.2) as writer:
        first = writer.create(event_type="t", action="x")
        started = time.monotonic()
        first.result(timeout=5)
        assert 0.1 < time.monotonic() - started < 3
        writer.create(event_type="t", action="y")
        assert writer.flush(timeout=5)
        assert len(server.calls) == 2


def test_unavailable_is_retried_with_the_same_request_ids() -> None:
    server = FakeServer(fail_first=2)
    with BatchWriter(server.append, max_events=3, interval=0.05) as writer:
        futures = [
            writer.create(event_type="t", action=str(i), request_id=f"r{i}" if i else "") for i in range(3)
        ]
        results = [f.result(timeout=10) for f in futures]
    assert len(server.calls) == 3 and server.calls[0] == server.calls[1] == server.calls[2]
    assert server.calls[0][1:] == ["r1", "r2"] and server.calls[0][0]  # a generated id for the first
    assert [r.sequence for r in results] == [0, 1, 2]


def test_a_refused_batch_fails_each_of_its_events() -> None:
    with BatchWriter(FakeServer(refuse=True).append, interval=0.05) as writer:
        future = writer.create(event_type="t", action="x")
        with pytest.raises(InvalidArgument):
            future.result(timeout=5)


def test_unavailable_for_too_long_fails_the_events() -> None:
    with (
        BatchWriter(FakeServer(fail_first=10**6).append, interval=0.01, retry_for=0.5) as writer,
        pytest.raises(Unavailable),
    ):
        writer.create(event_type="t", action="x").result(timeout=10)
