"""The verification read: one consistent snapshot of the log, streamed as StoredEvents.

The columns are read in the text the canonical form uses (the id as PostgreSQL's canonical UUID
text, the timestamps formatted by PostgreSQL as format_timestamp writes them), so the verifier
builds no UUID or datetime per event; it still recomputes every hash from the stored columns.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing, contextmanager
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from auditlog.domain.jcs import json_loads
from auditlog.domain.schema import FIELDS, NAMES, EventRow, Field, Kind
from auditlog.domain.verification import LogHead, StoredEvent
from auditlog.storage.postgres.database import required_row
from auditlog.storage.postgres.queries import STREAM_BATCH, prefetched_batches


def canonical_timestamp_sql(column: str) -> str:
    """SQL giving a timestamptz column as format_timestamp writes it: 2024-01-01T00:00:00.000000Z.

    Python's datetimes (which the log is written from) span the years 1 to 9999. A value outside
    them (BC, infinity, year 10000) can never have been hashed, and to_char would write a BC date
    like an AD one, so such a value reads as a text no leaf hash can match.
    """
    return (
        f"CASE WHEN {column} IS NULL THEN NULL"
        f" WHEN {column} >= '0001-01-01 00:00:00+00' AND {column} < '10000-01-01 00:00:00+00'"
        f""" THEN to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""
        f" ELSE 'out of range: ' || {column}::text END"
    )


def _stored_column(field: Field) -> str:
    """The SQL giving field as the verifier reads it, named as the field."""
    name = field.name
    if field.kind in (Kind.UUID, Kind.JSON):
        return f"{name}::text AS {name}"
    if field.kind is Kind.TIMESTAMP:
        return f"{canonical_timestamp_sql(name)} AS {name}"
    return name


# A StoredEvent per row, from start_sequence on, in sequence order, but details as its JSON text:
# decoding the text here skips psycopg's per-value Python loader around the same json_loads.
_STORED_EVENTS = (
    "SELECT "
    + ", ".join(map(_stored_column, FIELDS))
    + " FROM audit_events WHERE sequence >= %s ORDER BY sequence ASC"
)
_DETAILS_AT = next(i for i, f in enumerate(FIELDS) if f.kind is Kind.JSON)
_make = EventRow._make


def _stored_events(rows: list[tuple[Any, ...]]) -> list[StoredEvent]:
    """StoredEvents of rows of _STORED_EVENTS (bytea as bytes, the texts as str, details decoded
    here), a batch at a time: one comprehension instead of a Python row factory call per row."""
    return [
        _make((*row[:_DETAILS_AT], json_loads(row[_DETAILS_AT]), *row[_DETAILS_AT + 1 :])) for row in rows
    ]


@contextmanager
def verification_snapshot(
    pool: ConnectionPool, start_sequence: int
) -> Iterator[tuple[LogHead, bytes | None, Iterator[StoredEvent]]]:
    """A consistent snapshot for verification: the head, the chain hash before start_sequence
    (None when that event is missing) and every stored event from start_sequence on."""
    with pool.connection() as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        try:
            with conn.transaction():
                row = required_row(
                    conn.execute("SELECT sequence, chain_hash FROM log_head WHERE id = 1").fetchone(),
                    "the log_head row",
                )
                head = LogHead(row[0], bytes(row[1]))
                prev: bytes | None = bytes(32)
                if start_sequence > 0:
                    found = conn.execute(
                        "SELECT chain_hash FROM audit_events WHERE sequence = %s", (start_sequence - 1,)
                    ).fetchone()
                    prev = None if found is None else bytes(found[0])
                cur: psycopg.ServerCursor[Any]
                with conn.cursor(name="auditlog_verify") as cur:
                    cur.itersize = STREAM_BATCH
                    cur.execute(_STORED_EVENTS, (start_sequence,))
                    names = tuple(column.name for column in cur.description or ())
                    if names != NAMES:
                        raise RuntimeError(f"the query's columns are not the event's fields: {names}")
                    with closing(prefetched_batches(cur, STREAM_BATCH)) as batches:
                        yield head, prev, (event for batch in batches for event in _stored_events(batch))
        finally:
            conn.isolation_level = None
            conn.read_only = False
