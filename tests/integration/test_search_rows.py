"""SearchEvents' direct row-to-message conversion gives exactly the events the record path gives
(GetEvent, ListEvents and the SearchEvents of before), for any details, any Unicode and timestamps
at the ends of their range."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import struct_pb2
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from audit.v1 import event_pb2
from auditlog.api.convert import _fill_struct, event_to_proto, fill_event_proto_from_row
from auditlog.app import Service
from auditlog.domain.filters import EventFilter
from auditlog.domain.schema import EventRow
from auditlog.storage.postgres.search import search_rows
from auditlog_client import AuditClient
from auditlog_client.client import event_input
from tests.fix_canonical import details_objects, json_values, line, text

# Any single-line text, the empty string included.
optional_line = st.text(st.characters(blacklist_categories=["Cs", "Cc"]), max_size=30)
SETTINGS = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def converted_from_rows(service: Service) -> list[event_pb2.AuditEvent]:
    events = []
    for rows in search_rows(service.pool, EventFilter()):
        for row in rows:
            event = event_pb2.AuditEvent()
            fill_event_proto_from_row(event, row)
            events.append(event)
    return events


def converted_from_records(service: Service) -> list[event_pb2.AuditEvent]:
    return [event_to_proto(record) for record in service.store.iter_matching(EventFilter())]


@settings(max_examples=300, deadline=None)
@given(value=st.dictionaries(text, json_values, max_size=6))
@example(value={"empty": {}, "none": [], "nested": [{}, [], [[None, True, False]], {"a": {"b": -1.5}}]})
@example(value={"ü😀": 'é\n\t"\\', "": 1e300, "tiny": 5e-324, "int": 7.0})
def test_details_fill_equals_struct_update(value: dict[str, Any]) -> None:
    expected = struct_pb2.Struct()
    expected.update(value)
    filled = struct_pb2.Struct()
    _fill_struct(filled.fields, value)
    assert filled == expected


@SETTINGS
@given(
    details=st.lists(details_objects, min_size=1, max_size=3),
    user_id=line,
    user_agent=optional_line,
    occurred_at=st.sampled_from(
        [
            "",
            "0001-01-01T00:00:00Z",
            "1969-12-31T23:59:59.999999Z",
            "1970-01-01T00:00:00Z",
            "2024-02-29T12:34:56.789012+05:30",
            "9999-12-31T23:59:59.999999Z",
        ]
    ),
)
@example(
    details=[{"big": 1e300, "tiny": 5e-324, "neg": -0.0, "int": 9007199254740993.0, "t": True, "n": None}],
    user_id="ü",
    user_agent="😀 agent",
    occurred_at="1901-12-13T20:45:52.000001Z",
)
def test_search_rows_convert_to_the_events_records_give(
    service: Service,
    client: AuditClient,
    details: list[dict[str, Any]],
    user_id: str,
    user_agent: str,
    occurred_at: str,
) -> None:
    client.append_events(
        [
            event_input(
                event_type="rows.test",
                action="convert",
                details=item,
                user_id=user_id,
                user_agent=user_agent,
                occurred_at=occurred_at,
                ip_address="2001:0db8::1",
                risk_level="high",
            )
            for item in details
        ]
    )
    assert converted_from_rows(service) == converted_from_records(service)


def test_search_returns_the_events_get_event_returns(client: AuditClient) -> None:
    created = [
        client.create_event(event_type="rows.get", action="a"),
        client.create_event(
            event_type="rows.get",
            action="b",
            details={"k": [1, {"x": None}], "é": "😀"},
            occurred_at="0001-01-01T00:00:00Z",
            resource_id="😀",
        ),
    ]
    searched = list(client.search_events(event_type="rows.get"))
    assert searched == [client.get_event(event.id) for event in created] == created


@pytest.mark.parametrize("micros", [-62_135_596_800_000_001, 253_402_300_800_000_000])
def test_a_timestamp_outside_the_api_range_is_refused(micros: int) -> None:
    # Only a row written behind the service's back can hold one; reading it fails, as reading it
    # into a datetime does, instead of streaming a Timestamp no client can read.
    row = EventRow._make(
        ("0" * 8, 0, "t", "", "a", "", "", "{}", "", "", "", "", "", micros, 0, "", "", "", "", 2)
    )
    with pytest.raises(ValueError, match="out of range"):
        fill_event_proto_from_row(event_pb2.AuditEvent(), row)
