"""The event schema (auditlog.domain.schema) is the one list of the event's fields: the table, the
proto, the canonical form, the records, exports and the rows read back all follow it, by name."""

from __future__ import annotations

import json
import uuid
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

import psycopg

from audit.v1 import event_pb2
from auditlog.api.convert import EVENT_INPUT_FIELDS, event_to_proto
from auditlog.domain.canonical import canonical_bytes_from_text
from auditlog.domain.chain import build_record
from auditlog.domain.event import EventRecord, NewEvent
from auditlog.domain.schema import CANONICAL_NAMES, CLIENT_NAMES, FIELDS, NAMES, Kind
from auditlog.domain.verification import stored_event
from auditlog.export.fields import TABLE_COLUMNS, event_object
from auditlog.storage.postgres.copy_text import copy_fields
from auditlog.storage.postgres.migrations import apply_migrations


def test_the_table_holds_the_schema_columns_in_order(database_url: str) -> None:
    apply_migrations(database_url)
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT column_name, udt_name, is_nullable FROM information_schema.columns"
            " WHERE table_name = 'audit_events' ORDER BY ordinal_position"
        ).fetchall()
    by_name = {name: (udt, nullable == "YES") for name, udt, nullable in rows}
    assert set(by_name) == set(NAMES)
    for field in FIELDS:
        udt = {"bigint": "int8", "smallint": "int2", "timestamptz": "timestamptz"}.get(
            field.kind.sql_type, field.kind.sql_type
        )
        assert by_name[field.name] == (udt, field.nullable), field.name


def test_the_proto_and_the_records_hold_the_schema_fields() -> None:
    # The proto's fields in their number order: those added later come last.
    assert sorted(f.name for f in event_pb2.AuditEvent.DESCRIPTOR.fields) == sorted(NAMES)
    assert set(EVENT_INPUT_FIELDS) | {"details"} == {f.name for f in event_pb2.EventInput.DESCRIPTOR.fields}
    assert set(EVENT_INPUT_FIELDS) | {"details"} == set(CLIENT_NAMES)
    assert tuple(f.name for f in fields(EventRecord) if f.name != "details_json") == NAMES
    assert sorted(TABLE_COLUMNS) == sorted(NAMES)


def _record() -> EventRecord:
    event = NewEvent(
        event_type="t\tab",
        action="a",
        user_id="ü",
        details={"k": [1.5, None]},
        risk_level="high",
        ip_address="10.0.0.1",
        request_id="r",
        occurred_at=datetime(2020, 1, 2, tzinfo=UTC),
    )
    return build_record(
        event,
        sequence=7,
        recorded_at=datetime(2024, 1, 1, tzinfo=UTC),
        prev=bytes(32),
        event_id=uuid.UUID("123e4567-e89b-12d3-a456-426614174000"),
    )


def test_every_derived_form_names_each_field_once() -> None:
    record = _record()
    canonical = json.loads(canonical_bytes_from_text(stored_event(record)))
    hashed = sorted(f.name for f in FIELDS if f.kind not in (Kind.HASH, Kind.VERSION))
    assert list(canonical) == list(CANONICAL_NAMES) == hashed
    assert set(event_object(record)) == set(NAMES)
    message = event_to_proto(record)
    for field in FIELDS:
        shown: Any = event_object(record)[field.name]
        if field.kind is Kind.JSON:
            assert dict(message.details) == {"k": [1.5, None]} == shown
        elif field.kind is Kind.TIMESTAMP:
            assert message.HasField(field.name) and shown.endswith("Z")  # type: ignore[arg-type]
        else:
            assert str(getattr(message, field.name)) == str(shown), field.name
    # The COPY text of the client's columns: one value a column, the tab inside a value escaped.
    assert copy_fields(record).split("\t") == [
        "t\\tab", "ü", "a", "", "", '{"k":[1.5,null]}', "high", "10.0.0.1", "", "", "r",
        "2020-01-02T00:00:00+00:00",
    ]  # fmt: skip


def test_stored_events_are_read_by_name() -> None:
    stored: Any = stored_event(_record())
    assert stored._fields == NAMES
    assert stored.sequence == 7 and stored.id == "123e4567-e89b-12d3-a456-426614174000"
    assert stored.recorded_at == "2024-01-01T00:00:00.000000Z"
