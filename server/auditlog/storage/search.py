"""The search read: every event matching a filter, in ascending sequence order, as rows of API text.

PostgreSQL formats each column the way the API returns it: the id as its canonical UUID text, the
hashes as lowercase hex, the timestamps as whole microseconds since the Unix epoch and `details` as
its JSON text. psycopg then builds only a str or an int per value instead of a UUID, two datetimes,
three bytes objects and a jsonb value through a Python loader, and the formatting runs in
PostgreSQL, beside the server's Python rather than inside it.
"""

from __future__ import annotations

from collections.abc import Generator
from contextlib import closing
from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

from auditlog.domain.filters import EventFilter
from auditlog.storage.events import filter_clause, prefetched_batches

# A row of the search, in this order (api.convert.fill_event_proto_from_row reads it so):
# id (text), sequence, event_type, user_id, action, resource_type, resource_id, details (JSON text),
# risk_level, ip_address, user_agent, session_id, request_id, occurred_at (epoch microseconds or
# None), recorded_at (epoch microseconds), leaf_hash, prev_hash, chain_hash (lowercase hex).
# extract(epoch ...) is an exact numeric (PostgreSQL 14 and later), so no microsecond is rounded.
SearchRow = tuple[Any, ...]
_SEARCH = sql.SQL(
    "SELECT id::text, sequence, event_type, user_id, action, resource_type, resource_id, details::text,"
    " risk_level, ip_address, user_agent, session_id, request_id,"
    " (extract(epoch FROM occurred_at) * 1000000)::int8, (extract(epoch FROM recorded_at) * 1000000)::int8,"
    " encode(leaf_hash, 'hex'), encode(prev_hash, 'hex'), encode(chain_hash, 'hex')"
    " FROM audit_events"
)
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
        with conn.cursor(name="auditlog_search") as cur:
            cur.execute(query, params)
            with closing(prefetched_batches(cur, SEARCH_FETCH_ROWS)) as batches:
                yield from batches
