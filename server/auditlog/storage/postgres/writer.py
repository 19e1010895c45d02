"""The log writer: the sequencer's head-conditional batch append, on a connection of its own."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Protocol

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

from auditlog.domain.event import EventRecord
from auditlog.domain.schema import FIELDS
from auditlog.errors import DatabaseUnavailableError
from auditlog.storage.api import DuplicateRequestIdError, HeadMove, HeadState, StoredTail, UserHour
from auditlog.storage.postgres.copy_text import copy_line, copy_timestamp, details_text
from auditlog.storage.postgres.database import connect_like, database_errors
from auditlog.storage.postgres.rows import COLUMNS, HEAD, SELECT, TAIL, record_rows, translated_errors


class _Reader(Protocol):
    """The reads the writer makes outside its transactions (the log reader, EventStore)."""

    def head_and_tail(self) -> tuple[HeadState, StoredTail]: ...

    def get(self, event_id: uuid.UUID) -> EventRecord | None: ...


_COPY = sql.SQL("COPY audit_events ({}) FROM STDIN").format(sql.SQL(", ").join(map(sql.Identifier, COLUMNS)))
# "request_id <> ''" repeats the partial index's predicate: once psycopg prepares the statement and
# PostgreSQL plans it generically, nothing else proves that the index applies, and each batch would
# scan the whole table.
_BY_REQUEST_IDS = SELECT + sql.SQL(" WHERE request_id = ANY(%s) AND request_id <> ''")
_REQUEST_ID_INDEX = "audit_events_request_id"
# The sequencer's one-round-trip write (AppendConnection.append_at_once): the rows as one array per
# column, inserted only while the locked head is the one they were built on.
_COLUMN_TYPES = {f.name: f.kind.sql_type for f in FIELDS}
_LOCK_HEAD = HEAD + " FOR UPDATE"
_HEAD_IS = "EXISTS (SELECT 1 FROM log_head WHERE id = 1 AND sequence = %s AND chain_hash = %s)"
_TAIL_IS = f"EXISTS (SELECT 1 FROM ({TAIL}) AS tail WHERE tail.sequence = %s AND tail.chain_hash = %s)"
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
            tail_cursor = self._conn.execute(TAIL)
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
        with self._conn.cursor(row_factory=record_rows) as cur:
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

    def finish(self, move: HeadMove) -> None:
        """Records the users active in the hour, moves the head and commits, in one round trip."""
        with self._conn.pipeline():
            if move.user_hour is not None:
                self._conn.execute(_ADD_USER_HOURS, _user_hour_params(move.user_hour))
            self._conn.execute(_MOVE_HEAD, _move_params(move))
            commit_in_pipeline(self._conn)


def _user_hour_params(user_hour: UserHour) -> tuple[datetime, list[str]]:
    return user_hour[0], list(user_hour[1])


def _move_params(move: HeadMove) -> tuple[int, bytes, datetime | None, int]:
    return move.head.sequence, move.head.chain_hash, move.head.recorded_at, move.high_risk_added


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

    def __init__(self, pool: ConnectionPool, reader: _Reader) -> None:
        self._pool = pool
        self._conn: psycopg.Connection[Any] | None = None
        self._reader = reader

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
    def append_at_once(self, expected: HeadState, records: Sequence[EventRecord], move: HeadMove) -> bool:
        """Writes records, built to follow expected, and makes move, in one round trip (BEGIN, head
        lock, INSERT, user_hours, head update, COMMIT). Every write is conditional on
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
        new_tail = (move.head.sequence, move.head.chain_hash)
        try:
            with conn.pipeline():
                conn.execute("SELECT 1 FROM log_head WHERE id = 1 FOR UPDATE")
                conn.execute(_INSERT_IF_HEAD, (*columns, *same_head, *same_head))
                if move.user_hour is not None:
                    conn.execute(
                        _USER_HOURS_IF_HEAD, (*_user_hour_params(move.user_hour), *same_head, *new_tail)
                    )
                moved = conn.execute(_MOVE_HEAD_IF_HEAD, (*_move_params(move), *same_head, *new_tail))
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
