"""AuditService over a real gRPC server and PostgreSQL: each RPC as a client sees it."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf import json_format

from audit.v1 import audit_service_pb2 as pb
from audit.v1 import audit_service_pb2_grpc, event_pb2
from auditlog_client import AuditClient, InvalidArgument, NotFound
from auditlog_client.client import event_input


def _seed(client: AuditClient, count: int, **fields: Any) -> list[event_pb2.AuditEvent]:
    return [
        client.create_event(
            event_type="doc.read", action="read", user_id=f"user{i % 3}", resource_id=f"r{i}", **fields
        )
        for i in range(count)
    ]


def test_create_event_returns_the_recorded_event_with_position_and_hashes(client: AuditClient) -> None:
    event = client.create_event(
        event_type="user.login",
        action="successful_login",
        user_id="user123",
        resource_type="authentication",
        resource_id="session_456",
        details={"login_method": "password", "device_type": "web"},
        risk_level="low",
        ip_address="192.168.1.100",
        user_agent="Mozilla/5.0...",
    )
    assert uuid.UUID(event.id).version == 4
    assert event.sequence == 0
    assert event.prev_hash == "0" * 64
    assert len(event.chain_hash) == 64 and len(event.leaf_hash) == 64
    assert json_format.MessageToDict(event.details) == {"login_method": "password", "device_type": "web"}
    assert event.risk_level == "low"
    recorded = event.recorded_at.ToDatetime(tzinfo=UTC)
    assert abs(datetime.now(UTC) - recorded) < timedelta(seconds=30)
    assert not event.HasField("occurred_at")


def test_events_form_one_chain(client: AuditClient) -> None:
    events = _seed(client, 5)
    assert [e.sequence for e in events] == [0, 1, 2, 3, 4]
    for before, after in itertools.pairwise(events):
        assert after.prev_hash == before.chain_hash
        assert after.recorded_at.ToDatetime() >= before.recorded_at.ToDatetime()


def test_occurred_at_without_offset_is_read_as_utc(client: AuditClient) -> None:
    event = client.create_event(event_type="a.b", action="x", occurred_at="2024-01-01T10:00:00.1234567")
    assert event.occurred_at.ToDatetime(tzinfo=UTC) == datetime(2024, 1, 1, 10, 0, 0, 123456, tzinfo=UTC)
    shifted = client.create_event(event_type="a.b", action="x", occurred_at="2024-01-01T12:00:00+02:00")
    assert shifted.occurred_at.ToDatetime(tzinfo=UTC) == datetime(2024, 1, 1, 10, 0, tzinfo=UTC)


def test_retry_with_same_request_id_returns_the_original_event(client: AuditClient) -> None:
    first = client.create_event(event_type="pay.create", action="create", request_id="req-42")
    retry = client.create_event(event_type="pay.create", action="create", request_id="req-42")
    assert retry == first
    assert client.get_stats().total_events == 1


def test_retry_with_other_details_returns_the_original_details(client: AuditClient) -> None:
    first = client.create_event(event_type="a.b", action="x", request_id="req-7", details={"amount": 10})
    retry = client.create_event(event_type="a.b", action="x", request_id="req-7", details={"amount": 99})
    assert retry == first
    assert dict(retry.details) == {"amount": 10}
    assert client.get_event(first.id).details == first.details


def test_append_events_records_a_batch_in_order_and_dedupes_request_ids(client: AuditClient) -> None:
    original = client.create_event(event_type="x.y", action="a", request_id="dup")
    batch = [
        event_input(event_type="x.y", action="b"),
        event_input(event_type="x.y", action="c", request_id="dup"),
        event_input(event_type="x.y", action="d", request_id="new"),
        event_input(event_type="x.y", action="e", request_id="new"),
    ]
    recorded = client.append_events(batch)
    assert [e.action for e in recorded] == ["b", "a", "d", "d"]
    assert recorded[1] == original
    assert recorded[2] == recorded[3]
    assert [e.sequence for e in recorded] == [1, 0, 2, 2]
    assert client.get_stats().total_events == 3


def test_append_events_refuses_the_whole_batch_when_one_event_is_bad(client: AuditClient) -> None:
    batch = [
        event_input(event_type="x.y", action="ok"),
        event_input(event_type="x.y", action="", risk_level="extreme"),
    ]
    with pytest.raises(InvalidArgument) as info:
        client.append_events(batch)
    assert {v.field for v in info.value.violations} == {"events[1].action", "events[1].risk_level"}
    assert client.get_stats().total_events == 0


def test_append_events_refuses_empty_and_oversized_batches(client: AuditClient) -> None:
    with pytest.raises(InvalidArgument, match="want 1 to 1000"):
        client.append_events([])
    with pytest.raises(InvalidArgument, match="got 1001 events"):
        client.append_events([event_input(event_type="x.y", action="a")] * 1001)


def test_get_event_unknown_id_is_not_found(client: AuditClient) -> None:
    with pytest.raises(NotFound, match="no audit event"):
        client.get_event(str(uuid.uuid4()))


def test_get_event_malformed_id_names_the_field(client: AuditClient) -> None:
    with pytest.raises(InvalidArgument) as info:
        client.get_event("not-a-uuid")
    assert info.value.violations[0].field == "id"


def test_list_events_is_newest_first_by_default_and_pages_by_number(client: AuditClient) -> None:
    _seed(client, 7)
    first = client.list_events(page_size=3)
    assert [e.sequence for e in first.events] == [6, 5, 4]
    assert first.page == 1 and first.page_size == 3 and first.next_page_token
    third = client.list_events(page_size=3, page=3)
    assert [e.sequence for e in third.events] == [0]
    assert third.next_page_token == ""
    oldest = client.list_events(page_size=3, order_by="sequence asc")
    assert [e.sequence for e in oldest.events] == [0, 1, 2]


def test_list_events_pages_by_token_through_every_match(client: AuditClient) -> None:
    _seed(client, 14)
    seen: list[int] = []
    token = ""
    pages = 0
    while True:
        page = client.list_events(page_size=2, user_id="user1", page_token=token)
        seen.extend(e.sequence for e in page.events)
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert seen == [13, 10, 7, 4, 1]
    assert pages == 3


def test_page_token_with_other_filters_is_refused(client: AuditClient) -> None:
    _seed(client, 5)
    token = client.list_events(page_size=2).next_page_token
    with pytest.raises(InvalidArgument, match="other filters"):
        client.list_events(page_size=2, user_id="user1", page_token=token)
    with pytest.raises(InvalidArgument, match="did not issue"):
        client.list_events(page_token="@@@")
    with pytest.raises(InvalidArgument, match="page and page_token"):
        client.list_events(page=2, page_token=token)


def test_list_events_filters_on_every_field(client: AuditClient) -> None:
    client.create_event(
        event_type="user.login", action="ok", user_id="alice", risk_level="low", ip_address="10.0.0.1"
    )
    target = client.create_event(
        event_type="doc.delete",
        action="delete",
        user_id="bob",
        resource_type="document",
        resource_id="d-1",
        risk_level="critical",
        ip_address="2001:db8:0:0::1",
    )
    client.create_event(event_type="doc.delete", action="delete", user_id="carol", resource_type="document")
    filters = {
        "event_type": "doc.delete",
        "user_id": "bob",
        "action": "delete",
        "resource_type": "document",
        "resource_id": "d-1",
        "risk_level": "critical",
        "ip_address": "2001:db8::1",
    }
    for name, value in filters.items():
        matches = client.list_events(**{name: value}).events
        assert target.id in [e.id for e in matches], name
        assert all(getattr(e, name) == (value if name != "ip_address" else "2001:db8::1") for e in matches), (
            name
        )
    assert [e.id for e in client.list_events(**filters).events] == [target.id]


def test_list_events_filters_by_recorded_time_range(client: AuditClient) -> None:
    events = _seed(client, 3)
    middle = events[1].recorded_at.ToDatetime(tzinfo=UTC)
    exact = middle.strftime("%Y-%m-%dT%H:%M:%S.%f")
    within = client.list_events(start_date=exact, end_date=exact).events
    assert events[1].id in [e.id for e in within]
    future = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S")
    assert list(client.list_events(start_date=future).events) == []
    assert len(client.list_events(start_date="2024-01-01T00:00:00", end_date=future).events) == 3


def test_list_events_refuses_bad_paging_and_filters(client: AuditClient) -> None:
    cases: dict[str, dict[str, Any]] = {
        "page_size": {"page_size": 1001},
        "order_by": {"order_by": "user_id"},
        "page": {"page": -1},
        "start_date": {"start_date": "yesterday"},
        "risk_level": {"risk_level": "severe"},
        "ip_address": {"ip_address": "300.1.1.1"},
        "end_date": {"start_date": "2024-02-01", "end_date": "2024-01-01"},
    }
    for field, kwargs in cases.items():
        with pytest.raises(InvalidArgument) as info:
            client.list_events(**kwargs)
        assert field in [v.field for v in info.value.violations], field


def test_search_events_streams_every_match_in_sequence_order(client: AuditClient) -> None:
    for chunk in range(0, 2500, 1000):
        client.append_events(
            [
                event_input(event_type="bulk.load", action="load", user_id=f"u{i % 2}")
                for i in range(chunk, min(chunk + 1000, 2500))
            ]
        )
    streamed = list(client.search_events(user_id="u1"))
    assert len(streamed) == 1250
    assert [e.sequence for e in streamed] == list(range(1, 2500, 2))


def test_search_events_refuses_bad_filters_before_streaming(client: AuditClient) -> None:
    with pytest.raises(InvalidArgument, match="start_date"):
        list(client.search_events(start_date="01/02/2024"))


def test_verify_chain_checks_the_whole_log_and_ranges(client: AuditClient) -> None:
    empty = client.verify_chain(verify_all=True)
    assert empty.valid and empty.events_checked == 0 and empty.head_sequence == -1
    _seed(client, 6)
    whole = client.verify_chain(verify_all=True)
    assert whole.valid and whole.events_checked == 6
    assert whole.break_kind == pb.BREAK_KIND_UNSPECIFIED and not whole.HasField("first_bad_sequence")
    assert whole.head_sequence == 5
    ranged = client.verify_chain(start_sequence=2, end_sequence=3)
    assert ranged.valid and ranged.events_checked == 2
    assert (ranged.start_sequence, ranged.end_sequence) == (2, 3)
    tail = client.verify_chain(start_sequence=4)
    assert tail.valid and tail.events_checked == 2


def test_verify_chain_refuses_contradictory_or_impossible_ranges(client: AuditClient) -> None:
    _seed(client, 2)
    with pytest.raises(InvalidArgument, match="verify_all"):
        client.verify_chain(verify_all=True, start_sequence=0)
    with pytest.raises(InvalidArgument, match="end_sequence"):
        client.verify_chain(start_sequence=1, end_sequence=0)
    with pytest.raises(InvalidArgument, match="start_sequence"):
        client.verify_chain(start_sequence=-1)
    with pytest.raises(InvalidArgument, match="head sequence"):
        client.verify_chain(start_sequence=5)


def test_get_stats_counts_activity_and_reports_the_head_and_last_verification(client: AuditClient) -> None:
    stats = client.get_stats()
    assert stats.total_events == 0 and stats.head_sequence == -1 and not stats.HasField("last_verification")
    client.create_event(event_type="a.b", action="x", user_id="alice", risk_level="high")
    client.create_event(event_type="a.b", action="x", user_id="alice", risk_level="critical")
    client.create_event(event_type="a.b", action="x", user_id="bob", risk_level="low")
    last = client.create_event(event_type="a.b", action="x")
    client.verify_chain(verify_all=True)
    stats = client.get_stats()
    assert stats.total_events == 4
    assert stats.events_last_24h == 4
    assert stats.unique_users_last_24h == 2
    assert stats.high_risk_events == 2
    assert stats.head_sequence == 3 and stats.head_chain_hash == last.chain_hash
    assert stats.last_verification.valid and stats.last_verification.verify_all
    assert stats.last_verification.events_checked == 4


def test_missing_event_message_is_refused(stub: audit_service_pb2_grpc.AuditServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as info:
        stub.CreateEvent(pb.CreateEventRequest())
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
