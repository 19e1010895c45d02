"""The SearchEvents stream carries several events per message, within documented bounds, and stops
reading the log when its caller goes away."""

from __future__ import annotations

import json
import time
from typing import Any

import grpc

from audit.v1 import audit_service_pb2 as pb
from audit.v1 import audit_service_pb2_grpc
from auditlog.api.audit_servicer import SEARCH_MESSAGE_BYTES, SEARCH_MESSAGE_EVENTS, search_messages
from auditlog.app import Service
from auditlog.domain.schema import NAMES, EventRow
from auditlog_client import AuditClient
from auditlog_client.client import event_input
from tests.fix_server import append_padded, search_backends

# A client that refuses anything above gRPC's default receive limit, as most clients do.
DEFAULT_RECEIVE_LIMIT = 4 * 1024 * 1024


def messages_of(target: str, **filters: str) -> list[pb.SearchEventsResponse]:
    options = [("grpc.max_receive_message_length", DEFAULT_RECEIVE_LIMIT)]
    with grpc.insecure_channel(target, options=options) as channel:
        stub = audit_service_pb2_grpc.AuditServiceStub(channel)
        return list(stub.SearchEvents(pb.SearchEventsRequest(**filters), timeout=60))


def test_search_sends_up_to_1000_events_per_message_in_sequence_order(
    client: AuditClient, target: str
) -> None:
    for start in range(0, 2_500, 1_000):
        client.append_events(
            [
                event_input(event_type="stream.count", action="a")
                for _ in range(start, min(start + 1_000, 2_500))
            ]
        )
    messages = messages_of(target)
    assert [len(m.events) for m in messages] == [SEARCH_MESSAGE_EVENTS, SEARCH_MESSAGE_EVENTS, 500]
    assert [e.sequence for m in messages for e in m.events] == list(range(2_500))


def test_search_messages_stay_within_1_mib_for_large_events(target: str) -> None:
    # ~60 KB of details per event (the API allows 64 KiB): ~3.6 MB in all, 17 events a message.
    append_padded(target, 60, pad=60_000)
    messages = messages_of(target)
    assert len(messages) >= 4
    assert all(0 < m.ByteSize() <= SEARCH_MESSAGE_BYTES for m in messages)
    assert [e.details["i"] for m in messages for e in m.events] == list(range(60))


def test_an_event_larger_than_the_byte_bound_travels_alone() -> None:
    # Only a row written behind the service's back can be this large (details are at most 64 KiB).
    def row(sequence: int, pad: int) -> Any:
        values: dict[str, Any] = dict.fromkeys(NAMES, "")
        values.update(id=f"{sequence:08d}", sequence=sequence, event_type="t", action="a")
        values.update(details=json.dumps({"pad": "y" * pad}), occurred_at=None, recorded_at=0)
        values.update(canonical_version=2)
        return EventRow(**values)

    rows = [row(0, 10), row(1, 2 * SEARCH_MESSAGE_BYTES), row(2, 10), row(3, 10)]
    messages = list(search_messages(rows))
    assert [[e.sequence for e in m.events] for m in messages] == [[0], [1], [2, 3]]


def test_search_with_no_match_sends_no_message(target: str) -> None:
    assert messages_of(target, event_type="nothing.matches") == []


def open_search_backends(database_url: str) -> list[str]:
    """States of the service's sessions whose last statement was the search, still in its
    transaction (the cursor open)."""
    return [state for _, state in search_backends(database_url) if state != "idle"]


def test_search_stops_reading_when_the_caller_cancels(
    service: Service, target: str, database_url: str
) -> None:
    # ~18 MB of matches: far more than gRPC's flow-control windows, so the server is mid-stream,
    # its cursor open, when the caller cancels.
    append_padded(target, 3_000, pad=6_000)
    with grpc.insecure_channel(target) as channel:
        stub = audit_service_pb2_grpc.AuditServiceStub(channel)
        call = stub.SearchEvents(pb.SearchEventsRequest(), timeout=60)
        first = next(call)
        assert first.events[0].sequence == 0
        assert open_search_backends(database_url)  # the search transaction is open
        call.cancel()
    deadline = time.monotonic() + 15
    while open_search_backends(database_url):
        assert time.monotonic() < deadline, "the search transaction stayed open after the cancel"
        time.sleep(0.1)
