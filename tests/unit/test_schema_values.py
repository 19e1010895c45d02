"""schema.values_by_kind: a record's values of the given fields, in their order, each through its
kind's converter; fields of other kinds as they are."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from auditlog.domain.chain import build_record
from auditlog.domain.event import EventRecord, NewEvent
from auditlog.domain.schema import BY_NAME, FIELDS, Kind, optional, values_by_kind

T0 = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)


def _record(occurred_at: datetime | None) -> EventRecord:
    event = NewEvent(event_type="doc.edit", action="update", user_id="alice", occurred_at=occurred_at)
    return build_record(event, sequence=3, prev=b"\x01" * 32, recorded_at=T0, event_id=uuid.UUID(int=7))


def test_each_kind_goes_through_its_converter_and_the_rest_stay_as_they_are() -> None:
    record = _record(T0)
    values = values_by_kind(
        "v", FIELDS, {Kind.UUID: str, Kind.HASH: bytes.hex, Kind.SEQUENCE: lambda n: n * 10}
    )
    expected = []
    for field in FIELDS:
        value = getattr(record, field.name)
        if field.kind is Kind.UUID:
            value = str(value)
        elif field.kind is Kind.HASH:
            value = value.hex()
        elif field.kind is Kind.SEQUENCE:
            value = value * 10
        expected.append(value)
    assert values(record) == expected
    assert values(record)[0] == "00000000-0000-0000-0000-000000000007"
    assert values(record)[1] == 30


def test_the_fields_given_in_their_order_only() -> None:
    record = _record(None)
    fields = (BY_NAME["user_id"], BY_NAME["occurred_at"], BY_NAME["event_type"])
    values = values_by_kind("v", fields, {Kind.TIMESTAMP: optional(lambda moment: moment.isoformat())})
    assert values(record) == ["alice", None, "doc.edit"]
    assert values(_record(T0))[1] == "2024-05-06T07:08:09.123456+00:00"
