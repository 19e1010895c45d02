"""Named queries of the events log. Every value goes through a parameter; SQL text is fixed here."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

from auditlog.domain.event import EventRecord
from auditlog.domain.filters import EventFilter
from auditlog.domain.schema import FIELDS, HASH_NAMES, NAMES
from auditlog.domain.verification import LogHead, StoredEvent
from auditlog.errors import DatabaseUnavailableError
from auditlog.storage.api import (
    DuplicateRequestIdError,
    HeadState,
    SearchRow,
    SequenceTakenError,
    SnapshotSummary,
    Stats,
    StoredTail,
    hour_of,
)
from auditlog.storage.postgres.copy_text import copy_line, copy_timestamp, details_text
from auditlog.storage.postgres.database import connect_like, database_errors, required_row
from auditlog.storage.postgres.queries import STREAM_BATCH, filter_clause, where
from auditlog.storage.postgres.search import search_rows
from auditlog.storage.postgres.verification import verification_snapshot

COLUMNS = NAMES
_SELECT = sql.SQL("SELECT {} FROM audit_events").format(sql.SQL(", ").join(map(sql.Identifier, COLUMNS)))
_COPY = sql.SQL("COPY audit_events ({}) FROM STDIN").format(sql.SQL(", ").join(map(sql.Identifier, COLUMNS)))
# "request_id <> ''" repeats the partial index's predicate: once psycopg prepares the statement and
# PostgreSQL plans it generically, nothing else proves that the index applies, and each batch would
# scan the whole table.
_BY_REQUEST_IDS = _SELECT + sql.SQL(" WHERE request_id = ANY(%s) AND request_id <> ''")
_REQUEST_ID_INDEX = "audit_events_request_id"
_SEQUENCE_KEY = "audit_events_pkey"
# The sequencer's one-round-trip write (AppendConnection.append_at_once): the rows as one array per
# column, inserted only while the locked head is the one they were built on.
_COLUMN_TYPES = {f.name: f.kind.sql_type for f in FIELDS}
_HEAD = "SELECT sequence, chain_hash, recorded_at FROM log_head WHERE id = 1"
_LOCK_HEAD = _HEAD + " FOR UPDATE"
_HEAD_IS = "EXISTS (SELECT 1 FROM log_head WHERE id = 1 AND sequence = %s AND chain_hash = %s)"
# The stored tail (the last event row, one probe of the primary key from its end): before the log
# is extended it must be the head, or rows were removed from the tail or planted beyond it.
_TAIL = "SELECT sequence, chain_hash FROM audit_events ORDER BY sequence DESC LIMIT 1"
_TAIL_IS = f"EXISTS (SELECT 1 FROM ({_TAIL}) AS tail WHERE tail.sequence = %s AND tail.chain_hash = %s)"
# The column arrays go in binary (%b): psycopg's text format escapes every element in Python.
# Rendered to bytes once: psycopg would turn a sql.Composed into bytes at every batch's execute.
_INSERT_IF_HEAD = (
    sql.SQL("INSERT INTO audit_events ({}) SELECT * FROM unnest({}) WHERE " + _HEAD_IS + " AND " + _TAIL_IS)
    .format(
        sql.SQL(", ").join(map(sql.Identifier, COLUMNS)),
        sql.SQL(", ").join(sql.SQL("%b::{}[]").format(sql.SQL(_COLUMN_TYPES[column])) for column in COLUMNS),
    )
    .as_bytes()
)
# After the INSERT, the stored tail is the batch's last row when (and only when) it wrote them.
_USER_HOURS = "INSERT INTO user_hours (hour, user_id) SELECT %s, unnest(%s::text[])"
_ADD_USER_HOURS = _USER_HOURS + " ON CONFLICT DO NOTHING"
_USER_HOURS_IF_HEAD = _USER_HOURS + " WHERE " + _HEAD_IS + " AND " + _TAIL_IS + " ON CONFLICT DO NOTHING"
_MOVE_HEAD = (
    "UPDATE log_head SET sequence = %s, chain_hash = %s, recorded_at = %s,"
    " high_risk_events = high_risk_events + %s WHERE id = 1"
)
_MOVE_HEAD_IF_HEAD = _MOVE_HEAD + " AND sequence = %s AND chain_hash = %s AND " + _TAIL_IS
# Rows per COPY write while appending (about 30 KB, psycopg's own COPY buffer size).
COPY_CHUNK_ROWS = 64


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


_HASH_AT = tuple(NAMES.index(name) for name in HASH_NAMES)


def _record(values: Sequence[Any]) -> EventRecord:
    """The record of a row of _SELECT: its columns are the schema's fields in order, which is also
    EventRecord's field order (checked in domain.event), so no name lookup is needed per row."""
    columns = list(values)
    for index in _HASH_AT:
        columns[index] = bytes(columns[index])
    return EventRecord(*columns)


def _records(cursor: Any) -> Callable[[Sequence[Any]], EventRecord]:
    """A psycopg row factory for _SELECT's rows (refuses a query with other columns)."""
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


class AppendTransaction:
    """The write side of one sequencer batch, inside one transaction holding the head lock.

    Round trips are few because a batch of concurrent CreateEvent calls is often a dozen events:
    BEGIN and the head lock go together, then the COPY, then the closing statements and COMMIT
    together (psycopg pipeline mode). The idempotency lookup is left out unless needed (see
    DuplicateRequestIdError)."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn
        # The last stored event when the head was locked (see tail_mismatch).
        self.stored_tail: StoredTail = None

    def lock_head(self) -> HeadState:
        """Opens the transaction, locks the head and reads the stored tail, in one round trip."""
        with self._conn.pipeline():
            head_cursor = self._conn.execute(_LOCK_HEAD)
            # A statement of its own: its snapshot, taken once the lock is held, sees the rows of
            # whichever process held the lock before.
            tail_cursor = self._conn.execute(_TAIL)
            row = head_cursor.fetchone()
            tail = tail_cursor.fetchone()
        if row is None:
            raise RuntimeError("log_head row is missing; migrations did not run")
        self.stored_tail = None if tail is None else (tail[0], bytes(tail[1]))
        return HeadState(row[0], bytes(row[1]), row[2])

    def find_by_request_ids(self, request_ids: Sequence[str]) -> dict[str, EventRecord]:
        if not request_ids:
            return {}
        # Planned afresh each time (prepare=False): a plan cached while the table was tiny could
        # keep scanning it whole long after it has grown.
        with self._conn.cursor(row_factory=_records) as cur:
            records = cur.execute(_BY_REQUEST_IDS, (list(request_ids),), prepare=False).fetchall()
        return {record.request_id: record for record in records}

    def insert(self, records: Iterable[tuple[EventRecord, str | None]]) -> None:
        """COPYs records in, each with its copy_fields text if already made (None: made here),
        sending them in chunks as the iterable yields them: given a generator that builds the
        records, PostgreSQL stores one chunk while Python builds the next. Raises
        DuplicateRequestIdError when a request_id is already recorded."""
        formatted: dict[datetime, str] = {}
        lines: list[str] = []
        try:
            with self._conn.cursor() as cur, cur.copy(_COPY) as copy:
                for record, fields in records:
                    recorded_at = formatted.get(record.recorded_at)
                    if recorded_at is None:
                        recorded_at = formatted[record.recorded_at] = copy_timestamp(record.recorded_at)
                    lines.append(copy_line(record, recorded_at, fields))
                    if len(lines) == COPY_CHUNK_ROWS:
                        copy.write("".join(lines))
                        lines.clear()
                if lines:
                    copy.write("".join(lines))
        except psycopg.errors.UniqueViolation as err:
            if err.diag.constraint_name == _REQUEST_ID_INDEX:
                raise DuplicateRequestIdError from None
            raise

    def end_unchanged(self) -> None:
        """Ends a transaction that wrote nothing (a batch of retries only), releasing the head."""
        self._conn.rollback()

    def finish(
        self, head: HeadState, *, high_risk_added: int, user_hour: tuple[datetime, Sequence[str]] | None
    ) -> None:
        """Records the users active in the hour (user_hour: the hour, UTC on the hour, and user ids),
        moves the head (high_risk_added: the batch's high and critical events) and commits, in one
        round trip."""
        with self._conn.pipeline():
            if user_hour is not None:
                self._conn.execute(_ADD_USER_HOURS, (user_hour[0], list(user_hour[1])))
            self._conn.execute(
                _MOVE_HEAD, (head.sequence, head.chain_hash, head.recorded_at, high_risk_added)
            )
            commit_in_pipeline(self._conn)


def commit_in_pipeline(conn: psycopg.Connection[Any]) -> None:
    """Queues COMMIT in conn's open pipeline; leaving the pipeline sends it and waits for every result.

    Not conn.commit(): inside a pipeline it starts waiting for results while libpq may still hold
    the tail of a large query unsent, and PostgreSQL waits for that tail: neither side moves again.
    Leaving the pipeline flushes libpq's buffer completely before it waits."""
    conn.execute("COMMIT")


class AppendConnection:
    """The sequencer's own connection, held from one batch to the next: a pool checkout checks the
    connection with a round trip of its own, and one batch after another is the sequencer's whole
    life. It is made like the pool's connections but is not one of them (see connect_like). A
    connection that fails is closed; the next batch makes a new one."""

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool
        self._conn: psycopg.Connection[Any] | None = None
        self._reader = EventStore(pool)

    def head_and_tail(self) -> tuple[HeadState, StoredTail]:
        return self._reader.head_and_tail()

    def get(self, event_id: uuid.UUID) -> EventRecord | None:
        return self._reader.get(event_id)

    @contextmanager
    def transaction(self) -> Iterator[tuple[AppendTransaction, HeadState]]:
        """A transaction holding the head lock, and the head. The body must end it with finish()
        (or end_unchanged() when it wrote nothing); an exception rolls it back. A held connection found dead at the first round trip (say,
        PostgreSQL restarted since the last batch) is replaced once: nothing was sent that could
        have been committed."""
        with translated_errors():
            reused = self._conn is not None
            conn = self._checkout()
        try:
            tx = AppendTransaction(conn)
            try:
                head = tx.lock_head()
            except psycopg.OperationalError:
                if not reused:
                    raise
                self._discard(conn)
                conn = self._checkout()
                tx = AppendTransaction(conn)
                head = tx.lock_head()
            yield tx, head
        except (psycopg.OperationalError, psycopg.errors.UniqueViolation) as err:
            self._rollback(conn)
            with translated_errors():
                raise err from None
            raise
        except BaseException:
            self._rollback(conn)
            raise
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            self._rollback(conn)
            raise RuntimeError("an append transaction ended without finish()")

    @database_errors()
    def append_at_once(
        self,
        expected: HeadState,
        records: Sequence[EventRecord],
        head: HeadState,
        *,
        high_risk_added: int,
        user_hour: tuple[datetime, Sequence[str]] | None,
    ) -> bool:
        """Writes records, built to follow expected, and moves the head to head, in one round trip
        (BEGIN, head lock, INSERT, user_hours, head update, COMMIT). Every write is conditional on
        the locked head and the stored tail still being expected, so when another process moved it
        since (or the stored tail no longer matches), nothing is written and the answer is False. Raises DuplicateRequestIdError as insert does; on a
        connection failure the connection is discarded and UnavailableError raised: whether the batch
        committed is then unknown to this method (the caller looks an id up)."""
        with translated_errors():
            conn = self._checkout()
        # One array per column (COLUMNS are EventRecord's attribute names); details as JSON text.
        columns = [
            [details_text(r) for r in records]
            if column == "details"
            else [getattr(r, column) for r in records]
            for column in COLUMNS
        ]
        same_head = (expected.sequence, expected.chain_hash)
        new_tail = (head.sequence, head.chain_hash)
        try:
            with conn.pipeline():
                conn.execute("SELECT 1 FROM log_head WHERE id = 1 FOR UPDATE")
                conn.execute(_INSERT_IF_HEAD, (*columns, *same_head, *same_head))
                if user_hour is not None:
                    conn.execute(
                        _USER_HOURS_IF_HEAD, (user_hour[0], list(user_hour[1]), *same_head, *new_tail)
                    )
                moved = conn.execute(
                    _MOVE_HEAD_IF_HEAD,
                    (
                        head.sequence,
                        head.chain_hash,
                        head.recorded_at,
                        high_risk_added,
                        *same_head,
                        *new_tail,
                    ),
                )
                commit_in_pipeline(conn)
        except psycopg.OperationalError as err:
            self._discard(conn)
            raise DatabaseUnavailableError from err
        except psycopg.errors.UniqueViolation as err:
            self._rollback(conn)
            if err.diag.constraint_name == _REQUEST_ID_INDEX:
                raise DuplicateRequestIdError from None
            with translated_errors():
                raise err from None
            raise
        except BaseException:
            self._rollback(conn)
            raise
        return moved.rowcount == 1

    def connect(self) -> None:
        """Makes the connection now if there is none (raising UnavailableError when PostgreSQL
        cannot be reached), so that a later failure is one of a connection that existed."""
        with translated_errors():
            self._checkout()

    def close(self) -> None:
        """Closes the connection (at shutdown)."""
        if self._conn is not None:
            self._discard(self._conn)

    def _checkout(self) -> psycopg.Connection[Any]:
        if self._conn is None:
            self._conn = connect_like(self._pool)
        return self._conn

    def _discard(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = None
        conn.close()

    def _rollback(self, conn: psycopg.Connection[Any]) -> None:
        try:
            conn.rollback()
        except psycopg.Error:
            self._discard(conn)
            return
        if conn.broken or conn.closed:
            self._discard(conn)


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
        return AppendConnection(self.pool)

    def ping(self, timeout: float = 2.0) -> None:
        with self._connection(timeout) as conn:
            conn.execute("SELECT 1")

    def head(self) -> HeadState:
        with self._connection() as conn:
            row = conn.execute(_HEAD).fetchone()
        row = required_row(row, "the log_head row")
        return HeadState(row[0], bytes(row[1]), row[2])

    def head_and_tail(self) -> tuple[HeadState, StoredTail]:
        """The head and the stored tail, in one snapshot (see tail_mismatch)."""
        with self._connection() as conn:
            row = conn.execute(
                f"SELECT h.sequence, h.chain_hash, h.recorded_at, t.sequence, t.chain_hash FROM log_head h"
                f" LEFT JOIN LATERAL ({_TAIL}) AS t ON true WHERE h.id = 1"
            ).fetchone()
        row = required_row(row, "the log_head row")
        tail = None if row[3] is None else (row[3], bytes(row[4]))
        return HeadState(row[0], bytes(row[1]), row[2]), tail

    def get(self, event_id: uuid.UUID) -> EventRecord | None:
        with self._connection() as conn, conn.cursor(row_factory=_records) as cur:
            return cur.execute(_SELECT + sql.SQL(" WHERE id = %s"), (event_id,)).fetchone()

    def list_page(
        self,
        event_filter: EventFilter,
        *,
        descending: bool,
        limit: int,
        after_sequence: int | None = None,
        offset: int = 0,
    ) -> list[EventRecord]:
        """One page in sequence order; keyset (after_sequence) or offset."""
        conditions, params = filter_clause(event_filter)
        if after_sequence is not None:
            conditions.append(sql.SQL("sequence < %s" if descending else "sequence > %s"))
            params.append(after_sequence)
        order = sql.SQL(" ORDER BY sequence DESC" if descending else " ORDER BY sequence ASC")
        query = _SELECT + where(conditions) + order + sql.SQL(" LIMIT %s OFFSET %s")
        with self._connection() as conn, conn.cursor(row_factory=_records) as cur:
            return cur.execute(query, [*params, limit, offset]).fetchall()

    def iter_matching(
        self, event_filter: EventFilter, max_sequence: int | None = None
    ) -> Iterator[EventRecord]:
        """Every match in ascending sequence order through a server-side cursor (bounded memory)."""
        conditions, params = filter_clause(event_filter)
        if max_sequence is not None:
            conditions.append(sql.SQL("sequence <= %s"))
            params.append(max_sequence)
        query = _SELECT + where(conditions) + sql.SQL(" ORDER BY sequence ASC")
        with (
            self._connection() as conn,
            conn.transaction(),
            conn.cursor(name="auditlog_search", row_factory=_records) as cur,
        ):
            # No read-ahead here (unlike verification): a stream paced by a slow reader keeps at most
            # one batch in memory, and a database failure mid-stream ends it where it is.
            cur.itersize = STREAM_BATCH
            cur.execute(query, params)
            yield from cur

    def search_rows(self, event_filter: EventFilter) -> Generator[list[SearchRow], None, None]:
        with translated_errors():
            yield from search_rows(self.pool, event_filter)

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
