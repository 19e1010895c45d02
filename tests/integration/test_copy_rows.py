"""The sequencer's COPY text lines (storage.postgres.copy_text.copy_line) store exactly what psycopg's own row
adaptation (write_row of the record's values) stores, on real PostgreSQL, for awkward values too."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql
from psycopg.types.json import Jsonb, set_json_loads

from auditlog.domain.chain import build_record
from auditlog.domain.event import EventRecord, NewEvent
from auditlog.domain.jcs import jcs_text, json_loads
from auditlog.storage.postgres.copy_text import copy_line
from auditlog.storage.postgres.migrations import apply_migrations
from auditlog.storage.postgres.rows import COLUMNS
from tests.fix_db import create_database, drop_database

T0 = datetime(2024, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
AWKWARD = 'tab\there, new\nline, cr\r, back\\slash, \\N, \b\v\f, quote" and é ☃ 𝄞'


def row_from_record(record: EventRecord) -> tuple[Any, ...]:
    """The record's column values for psycopg to adapt, details as its canonical JSON text."""
    return tuple(
        Jsonb(record.details, dumps=jcs_text) if column == "details" else getattr(record, column)
        for column in COLUMNS
    )


def copy_into(table: str) -> sql.Composed:
    return sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
    )


def _record(
    text: str, details: dict[str, Any], occurred_at: datetime | None, sequence: int = 0
) -> EventRecord:
    event = NewEvent(
        event_type=text or "t",
        action="a",
        user_id=text,
        resource_type=text,
        resource_id=text,
        details=details,
        risk_level="high",
        ip_address="10.0.0.1",
        user_agent=text,
        session_id=text,
        request_id=text,
        occurred_at=occurred_at,
    )
    return build_record(event, sequence=sequence, recorded_at=T0, prev=bytes(32), event_id=uuid.uuid4())


@pytest.fixture(scope="module")
def conn(admin_url: str) -> Iterator[psycopg.Connection[Any]]:
    url = create_database(admin_url)
    apply_migrations(url)
    with psycopg.connect(url, autocommit=True) as connection:
        set_json_loads(json_loads, connection)
        connection.execute("CREATE TABLE copy_direct (LIKE audit_events)")
        connection.execute("CREATE TABLE copy_adapted (LIKE audit_events)")
        yield connection
    drop_database(admin_url, url)


def _stored_both_ways(
    conn: psycopg.Connection[Any], records: list[EventRecord]
) -> tuple[list[Any], list[Any]]:
    columns = ", ".join(COLUMNS)
    conn.execute("TRUNCATE copy_direct, copy_adapted")
    with conn.cursor() as cur:
        with cur.copy(copy_into("copy_direct")) as copy:
            copy.write("".join(copy_line(r, r.recorded_at.isoformat()) for r in records))
        with cur.copy(copy_into("copy_adapted")) as copy:
            for record in records:
                copy.write_row(row_from_record(record))
        direct = cur.execute(f"SELECT {columns}, details::text FROM copy_direct ORDER BY sequence").fetchall()
        adapted = cur.execute(
            f"SELECT {columns}, details::text FROM copy_adapted ORDER BY sequence"
        ).fetchall()
    return direct, adapted


def test_copy_line_stores_what_row_adaptation_stores(conn: psycopg.Connection[Any]) -> None:
    records = [
        _record("plain", {"path": "/x", "status": 200.0}, None, 0),
        _record(AWKWARD, {AWKWARD: [AWKWARD, 1.5, None, True, {"n": -2.0}]}, T0 - timedelta(days=400), 1),
        _record("", {}, datetime(1, 1, 1, tzinfo=UTC), 2),
        _record(
            "x", {"big": 1e300, "small": 5e-324}, datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), 3
        ),
    ]
    direct, adapted = _stored_both_ways(conn, records)
    assert direct == adapted
    assert direct[0][0] == records[0].id


ANY_TEXT = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=30)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    text=ANY_TEXT,
    value=ANY_TEXT,
)
def test_copy_line_round_trips_any_text(conn: psycopg.Connection[Any], text: str, value: str) -> None:
    direct, adapted = _stored_both_ways(conn, [_record(text, {text: value}, T0, 0)])
    assert direct == adapted
    assert direct[0][2:7] == (text or "t", text, "a", text, text)
