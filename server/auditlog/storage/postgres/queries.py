"""SQL shared by the log's reads: filter conditions, and batched fetching from server-side cursors."""

from __future__ import annotations

from collections.abc import Generator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
from psycopg import sql

from auditlog.domain.filters import EventFilter

# Rows fetched per round trip by streaming reads (search, verification, export).
STREAM_BATCH = 2_000

_FIRST_AT_OR_AFTER = (
    "COALESCE((SELECT t.sequence FROM audit_events t WHERE t.recorded_at >= %s"
    " ORDER BY t.recorded_at, t.sequence LIMIT 1), 9223372036854775807)"
)
_LAST_AT_OR_BEFORE = (
    "COALESCE((SELECT t.sequence FROM audit_events t WHERE t.recorded_at <= %s"
    " ORDER BY t.recorded_at DESC, t.sequence DESC LIMIT 1), -1)"
)


def filter_clause(event_filter: EventFilter) -> tuple[list[sql.Composable], list[Any]]:
    """WHERE conditions (to be AND-ed) and their parameters for a filter."""
    conditions: list[sql.Composable] = []
    params: list[Any] = []
    for column, value in event_filter.texts:
        conditions.append(sql.SQL("{} = %s").format(sql.Identifier(column)))
        params.append(value)
    # recorded_at never decreases along the sequence, so a time range is also a sequence range, found
    # by one probe of the recorded_at index at each end; bounding sequence lets a page read the
    # primary key in order and stop after page_size rows instead of sorting the whole range.
    if event_filter.start_date is not None:
        conditions.append(sql.SQL("recorded_at >= %s"))
        conditions.append(sql.SQL("sequence >= " + _FIRST_AT_OR_AFTER))
        params += [event_filter.start_date, event_filter.start_date]
    if event_filter.end_date is not None:
        conditions.append(sql.SQL("recorded_at <= %s"))
        conditions.append(sql.SQL("sequence <= " + _LAST_AT_OR_BEFORE))
        params += [event_filter.end_date, event_filter.end_date]
    return conditions, params


def where(conditions: list[sql.Composable]) -> sql.Composable:
    if not conditions:
        return sql.SQL("")
    return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conditions)


def prefetched_batches(cursor: psycopg.ServerCursor[Any], size: int) -> Generator[list[Any], None, None]:
    """The cursor's rows in batches of size; a helper thread fetches the next batch while the caller
    works through this one, so PostgreSQL and Python run side by side instead of taking turns."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefetch") as fetcher:
        pending = fetcher.submit(cursor.fetchmany, size)
        while True:
            rows = pending.result()
            if not rows:
                return
            # Only the helper touches the cursor until the caller asks for the next batch.
            pending = fetcher.submit(cursor.fetchmany, size)
            yield rows
