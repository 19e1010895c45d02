"""The search read: every event matching a filter, in ascending sequence order, as rows of API text.

PostgreSQL formats each column the way the API returns it: the id as its canonical UUID text, the
hashes as lowercase hex, the timestamps as whole microseconds since the Unix epoch and `details` as
its JSON text. psycopg then builds only a str or an int per value instead of a UUID, two datetimes,
three bytes objects and a jsonb value through a Python loader, and the formatting runs in
PostgreSQL, beside the server's Python rather than inside it.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from contextlib import closing
from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

from auditlog.domain.filters import EventFilter
from auditlog.domain.schema import FIELDS, NAMES, EventRow, Field, Kind
from auditlog.storage.api import SearchRow
from auditlog.storage.postgres.queries import filter_clause, prefetched_batches, where


def _search_column(field: Field) -> str:
    """The SQL giving field in its API form, named as the field. extract(epoch ...) is an exact
    numeric (PostgreSQL 14 and later), so no microsecond is rounded."""
    name = field.name
    if field.kind in (Kind.UUID, Kind.JSON):
        return f"{name}::text AS {name}"
    if field.kind is Kind.TIMESTAMP:
        return f"(extract(epoch FROM {name}) * 1000000)::int8 AS {name}"
    if field.kind is Kind.HASH:
        return f"encode({name}, 'hex') AS {name}"
    return name


# storage.api.SearchRow: a schema.EventRow holding the id (text), sequence, texts, details (JSON
# text), timestamps (epoch microseconds, None when unset) and hashes (lowercase hex).
_SEARCH = sql.SQL("SELECT " + ", ".join(map(_search_column, FIELDS)) + " FROM audit_events")


def event_rows(cursor: Any) -> Callable[[Sequence[Any]], Any]:
    """A psycopg row factory making a schema.EventRow of each row of a query that selects every
    field under its own name, in schema order."""
    names = tuple(column.name for column in cursor.description or ())
    if names != NAMES:
        raise RuntimeError(f"the query's columns are not the event's fields: {names}")
    make: Callable[[Sequence[Any]], Any] = EventRow._make
    return make


# Rows per round trip: one message's worth of events (see api.audit_servicer.SEARCH_MESSAGE_EVENTS).
SEARCH_FETCH_ROWS = 1_000


def search_rows(pool: ConnectionPool, event_filter: EventFilter) -> Generator[list[SearchRow], None, None]:
    """Every match in ascending sequence order, in batches of at most SEARCH_FETCH_ROWS rows,
    through a server-side cursor. A helper thread reads the next batch while the caller works
    through this one, so at most two batches are in memory; a database failure is raised where the
    caller asks for the batch it could not read. Closing the generator closes the cursor."""
    conditions, params = filter_clause(event_filter)
    query: sql.Composable = _SEARCH
    if conditions:
        query += sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conditions)
    query += sql.SQL(" ORDER BY sequence ASC")
    with pool.connection() as conn, conn.transaction():
        cur: psycopg.ServerCursor[Any]
        with conn.cursor(name="auditlog_search", row_factory=event_rows) as cur:
            cur.execute(query, params)
            with closing(prefetched_batches(cur, SEARCH_FETCH_ROWS)) as batches:
                yield from batches


def search_page(
    pool: ConnectionPool, event_filter: EventFilter, after_sequence: int, limit: int
) -> list[SearchRow]:
    """At most limit matches after after_sequence, ascending, as search rows: one read of the primary
    key from after_sequence (a live tail's page)."""
    conditions, params = filter_clause(event_filter)
    conditions.append(sql.SQL("sequence > %s"))
    query = _SEARCH + where(conditions) + sql.SQL(" ORDER BY sequence ASC LIMIT %s")
    with pool.connection() as conn, conn.cursor(row_factory=event_rows) as cur:
        return cur.execute(query, [*params, after_sequence, limit]).fetchall()
