"""Property tests over open-ended inputs: details JSON, Unicode text, filter combinations, page sizes."""

from __future__ import annotations

import uuid
from datetime import UTC
from typing import Any

import pytest
from google.protobuf import json_format
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from audit.v1 import event_pb2
from auditlog.domain.canonical import canonical_bytes, leaf_hash
from auditlog_client import AuditClient
from auditlog_client.client import event_input
from tests.fix_canonical import details_objects, line

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def recomputed_leaf(event: event_pb2.AuditEvent) -> str:
    """The leaf hash a third party computes from the event as the API returns it."""
    return leaf_hash(
        canonical_bytes(
            id=uuid.UUID(event.id),
            sequence=event.sequence,
            event_type=event.event_type,
            user_id=event.user_id,
            action=event.action,
            resource_type=event.resource_type,
            resource_id=event.resource_id,
            details=json_format.MessageToDict(event.details),
            risk_level=event.risk_level,
            ip_address=event.ip_address,
            user_agent=event.user_agent,
            session_id=event.session_id,
            request_id=event.request_id,
            occurred_at=event.occurred_at.ToDatetime(tzinfo=UTC) if event.HasField("occurred_at") else None,
            recorded_at=event.recorded_at.ToDatetime(tzinfo=UTC),
            recorded_by=event.recorded_by,  # canonical form version 2, every new event's
        )
    ).hex()


@SETTINGS
@given(details=details_objects, user_id=line, resource_id=line)
# jsonb prints 1e300 as a 301-digit integer; the hash must still be that of the double.
@example(
    details={"big": 1e300, "tiny": 5e-324, "neg": -0.0, "int": 9007199254740993.0},
    user_id="ü",
    resource_id="😀",
)
def test_any_details_and_unicode_survive_storage_and_verify(
    client: AuditClient, details: dict[str, Any], user_id: str, resource_id: str
) -> None:
    created = client.create_event(
        event_type="prop.test", action="store", details=details, user_id=user_id, resource_id=resource_id
    )
    fetched = client.get_event(created.id)
    assert fetched == created
    assert json_format.MessageToDict(fetched.details) == json_format.MessageToDict(created.details)
    assert recomputed_leaf(fetched) == fetched.leaf_hash
    result = client.verify_chain(start_sequence=created.sequence, end_sequence=created.sequence)
    assert result.valid, result.message


@SETTINGS
@given(details=st.lists(details_objects, min_size=1, max_size=4))
@example(details=[{"neg": -0.0, "nested": {"z": [-0.0, 0.0]}}, {}, {"n": 1.0, "big": 1e300}])
def test_append_events_answers_what_get_event_returns(
    client: AuditClient, details: list[dict[str, Any]]
) -> None:
    appended = client.append_events(
        [event_input(event_type="prop.append", action="store", details=d) for d in details]
    )
    assert [client.get_event(event.id) for event in appended] == appended


def test_append_events_retry_answers_the_original_details(client: AuditClient) -> None:
    original = client.create_event(event_type="x.y", action="a", request_id="r1", details={"v": 1.0})
    appended = client.append_events(
        [
            event_input(event_type="x.y", action="b", request_id="r1", details={"v": 2.0}),
            event_input(event_type="x.y", action="c", request_id="r2", details={"v": 3.0}),
            event_input(event_type="x.y", action="d", request_id="r2", details={"v": 4.0}),
            event_input(event_type="x.y", action="e", details={"v": -0.0}),
        ]
    )
    assert appended[0] == original
    assert appended[1] == appended[2] == client.get_event(appended[1].id)
    assert json_format.MessageToDict(appended[2].details) == {"v": 3.0}
    assert appended[3] == client.get_event(appended[3].id)
    assert str(appended[3].details.fields["v"].number_value) == "0.0"


FIELDS = {
    "event_type": ["user.login", "doc.read"],
    "user_id": ["alice", "bob", ""],
    "action": ["read", "write"],
    "resource_type": ["doc", ""],
    "risk_level": ["low", "high", ""],
    "ip_address": ["10.0.0.1", "2001:db8::1", ""],
}


@pytest.fixture
def dataset(client: AuditClient) -> list[event_pb2.AuditEvent]:
    import itertools

    combos = list(itertools.product(*FIELDS.values()))[::5]
    rows: list[dict[str, Any]] = [
        {k: v for k, v in zip(FIELDS, combo, strict=True) if k in ("event_type", "action") or v}
        for combo in combos
    ]
    events = [event_input(**row) for row in rows]
    return client.append_events(events)


@SETTINGS
@given(
    chosen=st.dictionaries(st.sampled_from(sorted(FIELDS)), st.integers(0, 2), max_size=4),
    size=st.integers(1, 7),
)
def test_filter_combinations_page_through_exactly_the_matches(
    client: AuditClient, dataset: list[event_pb2.AuditEvent], chosen: dict[str, int], size: int
) -> None:
    filters = {name: FIELDS[name][index % len(FIELDS[name])] for name, index in chosen.items()}
    filters = {name: value for name, value in filters.items() if value}
    expected = [e.sequence for e in reversed(dataset) if all(getattr(e, k) == v for k, v in filters.items())]
    seen: list[int] = []
    token = ""
    while True:
        page = client.list_events(page_size=size, page_token=token, **filters)
        assert len(page.events) <= size
        seen.extend(e.sequence for e in page.events)
        token = page.next_page_token
        if not token:
            break
    assert seen == expected
    assert [e.sequence for e in client.search_events(**filters)] == sorted(expected)
