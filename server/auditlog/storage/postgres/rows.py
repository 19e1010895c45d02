"""The events table's columns, row factory, head and tail queries and key errors, for reader and writer."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql

from auditlog.domain.event import EventRecord
from auditlog.domain.schema import HASH_NAMES, NAMES
from auditlog.storage.api import SequenceTakenError
from auditlog.storage.postgres.database import database_errors

COLUMNS = NAMES
SELECT = sql.SQL("SELECT {} FROM audit_events").format(sql.SQL(", ").join(map(sql.Identifier, COLUMNS)))
_SEQUENCE_KEY = "audit_events_pkey"
HEAD = "SELECT sequence, chain_hash, recorded_at FROM log_head WHERE id = 1"
# The stored tail (the last event row, one probe of the primary key from its end): before the log
# is extended it must be the head, or rows were removed from the tail or planted beyond it.
TAIL = "SELECT sequence, chain_hash FROM audit_events ORDER BY sequence DESC LIMIT 1"

_HASH_AT = tuple(NAMES.index(name) for name in HASH_NAMES)


def _record(values: Sequence[Any]) -> EventRecord:
    """The record of a row of SELECT: its columns are the schema's fields in order, which is also
    EventRecord's field order (checked in domain.event), so no name lookup is needed per row."""
    columns = list(values)
    for index in _HASH_AT:
        columns[index] = bytes(columns[index])
    return EventRecord(*columns)


def record_rows(cursor: Any) -> Callable[[Sequence[Any]], EventRecord]:
    """A psycopg row factory for SELECT's rows (refuses a query with other columns)."""
    names = tuple(column.name for column in cursor.description or ())
    if names and names != NAMES:
        raise RuntimeError(f"the query's columns are not the event's fields: {names}")
    return _record


@contextmanager
def translated_errors() -> Iterator[None]:
    """Raises the storage seam's errors for the driver's: an unreachable database or a failed
    connection becomes DatabaseUnavailableError (database_errors), a taken sequence
    SequenceTakenError."""
    try:
        with database_errors():
            yield
    except psycopg.errors.UniqueViolation as err:
        if err.diag.constraint_name == _SEQUENCE_KEY:
            raise SequenceTakenError from err
        raise
