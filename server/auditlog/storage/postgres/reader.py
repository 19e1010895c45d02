"""The log reader: get, page, stream, snapshot and stats of committed events, through the service pool."""

from __future__ import annotations

import uuid
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

from auditlog.domain.event import EventRecord
from auditlog.domain.filters import EventFilter
from auditlog.domain.verification import LogHead, StoredEvent
from auditlog.storage.api import HeadState, PageQuery, SearchRow, SnapshotSummary, Stats, StoredTail, hour_of
from auditlog.storage.postgres.database import required_row
from auditlog.storage.postgres.queries import STREAM_BATCH, filter_clause, where
from auditlog.storage.postgres.rows import HEAD, SELECT, TAIL, record_rows, translated_errors
from auditlog.storage.postgres.search import search_page, search_rows
from auditlog.storage.postgres.verification import verification_snapshot
from auditlog.storage.postgres.writer import AppendConnection

# recorded_at never decreases along the sequence (the sequencer guarantees it), so "the events of
# the last 24 hours" are the events from one sequence on, found by one probe of the recorded_at index.
_RECENT_START = (
    "SELECT min(sequence) FROM ("
    " SELECT sequence FROM audit_events WHERE recorded_at >= %s ORDER BY recorded_at, sequence LIMIT 1) AS s"
)
# Distinct users of the window: the hourly sets (user_hours) of the whole hours in it, plus the users of
# the events of the partial hour at its start (a primary-key range, at most an hour of events).
_USERS_SINCE = """
SELECT count(DISTINCT user_id) FROM (
    SELECT user_id FROM user_hours WHERE hour >= %s
    UNION ALL
    SELECT user_id FROM audit_events WHERE sequence >= %s AND sequence < %s AND user_id <> ''
) AS active
"""


class EventStore:
    """Reads and writes of the log through the service pool."""

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool

    @contextmanager
    def _connection(self, timeout: float | None = None) -> Iterator[psycopg.Connection[Any]]:
        with translated_errors(), self.pool.connection(timeout=timeout) as conn:
            yield conn

    def writer(self) -> AppendConnection:
        """The sequencer's writer, on a connection of its own made like the pool's."""
        return AppendConnection(self.pool, self)

    def ping(self, timeout: float = 2.0) -> None:
        with self._connection(timeout) as conn:
            conn.execute("SELECT 1")

    def head(self) -> HeadState:
        with self._connection() as conn:
            row = conn.execute(HEAD).fetchone()
        row = required_row(row, "the log_head row")
        return HeadState(row[0], bytes(row[1]), row[2])

    def head_and_tail(self) -> tuple[HeadState, StoredTail]:
        """The head and the stored tail, in one snapshot (see tail_mismatch)."""
        with self._connection() as conn:
            row = conn.execute(
                f"SELECT h.sequence, h.chain_hash, h.recorded_at, t.sequence, t.chain_hash FROM log_head h"
                f" LEFT JOIN LATERAL ({TAIL}) AS t ON true WHERE h.id = 1"
            ).fetchone()
        row = required_row(row, "the log_head row")
        tail = None if row[3] is None else (row[3], bytes(row[4]))
        return HeadState(row[0], bytes(row[1]), row[2]), tail

    def get(self, event_id: uuid.UUID) -> EventRecord | None:
        with self._connection() as conn, conn.cursor(row_factory=record_rows) as cur:
            return cur.execute(SELECT + sql.SQL(" WHERE id = %s"), (event_id,)).fetchone()

    def list_page(self, event_filter: EventFilter, page: PageQuery) -> list[EventRecord]:
        """One page in sequence order; keyset (after_sequence) or offset."""
        conditions, params = filter_clause(event_filter)
        if page.after_sequence is not None:
            conditions.append(sql.SQL("sequence < %s" if page.descending else "sequence > %s"))
            params.append(page.after_sequence)
        order = sql.SQL(" ORDER BY sequence DESC" if page.descending else " ORDER BY sequence ASC")
        query = SELECT + where(conditions) + order + sql.SQL(" LIMIT %s OFFSET %s")
        with self._connection() as conn, conn.cursor(row_factory=record_rows) as cur:
            return cur.execute(query, [*params, page.limit, page.offset]).fetchall()

    def iter_matching(
        self, event_filter: EventFilter, max_sequence: int | None = None
    ) -> Iterator[EventRecord]:
        """Every match in ascending sequence order through a server-side cursor (bounded memory)."""
        conditions, params = filter_clause(event_filter)
        if max_sequence is not None:
            conditions.append(sql.SQL("sequence <= %s"))
            params.append(max_sequence)
        query = SELECT + where(conditions) + sql.SQL(" ORDER BY sequence ASC")
        with (
            self._connection() as conn,
            conn.transaction(),
            conn.cursor(name="auditlog_search", row_factory=record_rows) as cur,
        ):
            # No read-ahead here (unlike verification): a stream paced by a slow reader keeps at most
            # one batch in memory, and a database failure mid-stream ends it where it is.
            cur.itersize = STREAM_BATCH
            cur.execute(query, params)
            yield from cur

    def search_rows(self, event_filter: EventFilter) -> Generator[list[SearchRow], None, None]:
        with translated_errors():
            yield from search_rows(self.pool, event_filter)

    def search_page(self, event_filter: EventFilter, after_sequence: int, limit: int) -> list[SearchRow]:
        with translated_errors():
            return search_page(self.pool, event_filter, after_sequence, limit)

    @contextmanager
    def verification_snapshot(
        self, start_sequence: int
    ) -> Iterator[tuple[LogHead, bytes | None, Iterator[StoredEvent]]]:
        with translated_errors(), verification_snapshot(self.pool, start_sequence) as snapshot:
            yield snapshot

    def summarise(self, event_filter: EventFilter, max_sequence: int) -> SnapshotSummary:
        """Count, sequence range and last chain hash of the matches at or below max_sequence."""
        conditions, params = filter_clause(event_filter)
        conditions.append(sql.SQL("sequence <= %s"))
        params.append(max_sequence)
        query = sql.SQL("SELECT count(*), min(sequence), max(sequence) FROM audit_events") + where(conditions)
        with self._connection() as conn:
            row = conn.execute(query, params).fetchone()
            if row is None:
                raise RuntimeError("count(*) returned no row")
            count, first, last = int(row[0]), row[1], row[2]
            last_hash: bytes | None = None
            if last is not None:
                found = conn.execute(
                    "SELECT chain_hash FROM audit_events WHERE sequence = %s", (last,)
                ).fetchone()
                if found is None:
                    raise RuntimeError(f"event {last} vanished from an append-only log")
                last_hash = bytes(found[0])
        return SnapshotSummary(count, first, last, last_hash)

    @staticmethod
    def _first_at_or_after(conn: psycopg.Connection[Any], moment: datetime, default: int) -> int:
        row = conn.execute(_RECENT_START, (moment,)).fetchone()
        return default if row is None or row[0] is None else int(row[0])

    def stats(self, now: datetime) -> Stats:
        """Statistics in a few index probes at any log size (see _RECENT_START and _USERS_SINCE)."""
        with self._connection() as conn, conn.transaction():
            head_row = conn.execute(
                "SELECT sequence, chain_hash, recorded_at, high_risk_events FROM log_head WHERE id = 1"
            ).fetchone()
            head_row = required_row(head_row, "the log_head row")
            head = HeadState(head_row[0], bytes(head_row[1]), head_row[2])
            cutoff = now - timedelta(hours=24)
            first_recent = self._first_at_or_after(conn, cutoff, head.sequence + 1)
            whole_hours = hour_of(cutoff) + (
                timedelta(0) if cutoff == hour_of(cutoff) else timedelta(hours=1)
            )
            first_whole = self._first_at_or_after(conn, whole_hours, head.sequence + 1)
            users_row = conn.execute(_USERS_SINCE, (whole_hours, first_recent, first_whole)).fetchone()
        users_row = required_row(users_row, "the count of users")
        return Stats(
            total_events=head.sequence + 1,
            events_last_24h=head.sequence + 1 - first_recent,
            unique_users_last_24h=int(users_row[0]),
            high_risk_events=int(head_row[3]),
            head=head,
        )
