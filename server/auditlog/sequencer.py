"""The single writer of the log (docs/architecture.md, "Writing: the sequencer").

Request threads hand events to `Sequencer.append`; one thread drains what is pending (up to a batch
limit, waiting at most max_wait_seconds for more, see `_run`), and in one transaction locks the log head,
resolves idempotent retries, assigns sequences and recorded_at, hashes, inserts, moves the head and
commits. Only then is every caller in the batch answered. A failed batch fails every caller in it
and leaves nothing behind (the transaction rolls back).

The wait is adaptive: a batch waits for more callers only while it is smaller than the one before
(see `_run`), so a lone caller pays no batching delay and concurrent callers share transactions.

A batch of up to ONE_TRIP_MAX_EVENTS is written in one round trip on the head this process last
committed, every write conditional on that head still being the head; otherwise (or when another
process moved the head) under the head lock as above. See `append_batch` and `_write`.
"""

from __future__ import annotations

import concurrent.futures
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from auditlog import metrics, tracing
from auditlog.domain.chain import PreparedEvent, RecordBuilder, prepare_event
from auditlog.domain.event import HIGH_RISK_LEVELS, EventRecord, NewEvent, random_uuids
from auditlog.errors import (
    AuditLogError,
    DatabaseUnavailableError,
    FailedPreconditionError,
    ShuttingDownError,
    UnavailableError,
)
from auditlog.storage.api import (
    DuplicateRequestIdError,
    HeadMove,
    HeadState,
    LogWriter,
    SequenceTakenError,
    hour_of,
    tail_mismatch,
)
from auditlog.storage.postgres.copy_text import copy_fields

_log = logging.getLogger(__name__)
# Batches up to this many events (concurrent CreateEvent calls, small AppendEvents) are written in
# one round trip with INSERT ... unnest; larger ones by COPY, whose round trips they amortise.
ONE_TRIP_MAX_EVENTS = 64
Clock = Callable[[], datetime]
_DB_ATTRIBUTES = {"db.system": "postgresql", "db.operation": "append"}


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Pending:
    events: Sequence[PreparedEvent]
    # The events' copy_fields texts when they will surely go by COPY (made in the caller's thread).
    copy_texts: Sequence[str] | None = None
    future: Future[list[EventRecord]] = field(default_factory=Future)
    # The caller's span, which the batch's span links to (None while not tracing).
    caller: Any = None


def _as_utc(value: datetime) -> datetime:
    # A datetime holds microseconds already (the log's precision); only the zone needs normalising.
    return value.astimezone(UTC)


class Sequencer:
    """Orders appends into one chain; see the module docstring."""

    def __init__(
        self,
        writer: LogWriter,
        *,
        clock: Clock = utc_now,
        max_batch_events: int = 1_000,
        max_wait_seconds: float = 0.002,
    ) -> None:
        self._writer = writer
        # The head as this process last committed it: a small batch is written in one round trip
        # on the assumption that it is still the head (see LogWriter.append_at_once).
        self._head: HeadState | None = None
        self._clock = clock
        self._max_batch = max_batch_events
        self._max_wait = max_wait_seconds
        self._queue: queue.Queue[_Pending | None] = queue.Queue()
        self._accepting = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="sequencer", daemon=True)
        # The users already written to user_hours for the current hour (by this process), so that a
        # batch writes only users new in the hour; filled only after a commit.
        self._users_hour: datetime | None = None
        self._users_seen: set[str] = set()
        # Why appends are stopped (the stored tail does not match the head), or None.
        self._stopped_reason: str | None = None

    def start(self) -> None:
        self._accepting = True
        self._thread.start()

    def check_tail(self) -> str | None:
        """Reads the head and the stored tail now: why appends are stopped, or None (which lets
        them go on). Called at start, and by readiness while they are stopped."""
        self._stopped_reason = tail_mismatch(*self._writer.head_and_tail())
        return self._stopped_reason

    def appends_stopped(self) -> str | None:
        """Why appends are stopped, or None; while they are, the log is read again each time, so
        a repaired log lets them go on."""
        return None if self._stopped_reason is None else self.check_tail()

    def stop(self, timeout: float = 30.0) -> None:
        """Refuses new appends, finishes every pending one, then ends the writer thread."""
        with self._lock:
            if not self._accepting:
                return
            self._accepting = False
            self._queue.put(None)
        self._thread.join(timeout)

    def append(
        self, events: Sequence[NewEvent], timeout: float | None = 60.0, *, recorded_by: str = ""
    ) -> list[EventRecord]:
        """Records events (all or nothing, in order) as written by the principal recorded_by ("" with
        auth off) and returns them once committed."""
        started = time.monotonic()
        future = self.submit(events, recorded_by=recorded_by)
        try:
            records = future.result(timeout)
        except concurrent.futures.TimeoutError:
            # The batch may still commit after this answer: only the caller's request_id makes
            # the retry safe, so say so rather than report an internal error.
            raise UnavailableError(
                "the append did not finish in time and may still be recorded; retry with the same request_id"
            ) from None
        metrics.append_finished(time.monotonic() - started)
        return records

    def submit(self, events: Sequence[NewEvent], *, recorded_by: str = "") -> Future[list[EventRecord]]:
        """Queues events (all or nothing, in order) written by recorded_by without waiting: the
        future gets their records once committed, or the batch's error. Raises ShuttingDownError
        once stop() has begun."""
        # Ids and the position-free part of the canonical bytes are made here, in the caller's
        # thread, while the sequencer thread writes earlier batches.
        pending = _Pending(
            [
                prepare_event(e, i, recorded_by)
                for e, i in zip(events, random_uuids(len(events)), strict=True)
            ],
            # Larger than one-trip batches: certain to be written by COPY, so its text is made here.
            [copy_fields(e) for e in events] if len(events) > ONE_TRIP_MAX_EVENTS else None,
            caller=tracing.caller(),
        )
        with self._lock:
            if not self._accepting:
                raise ShuttingDownError("the server is shutting down; retry against another instance")
            self._queue.put(pending)
        return pending.future

    def _run(self) -> None:
        stopping = False
        # Callers in the previous batch. Under load, whatever queued during one commit forms the
        # next batch; waiting (at most max_wait) until a batch is as large as the previous one keeps
        # batches from shrinking to one or two callers when requests arrive spread out, which costs a
        # transaction each. A lone caller (previous batch of one) never waits.
        previous = 1
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            size = len(first.events)
            deadline = self._monotonic() + self._max_wait
            while size < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    remaining = deadline - self._monotonic()
                    if len(batch) >= previous or remaining <= 0:
                        break
                    try:
                        item = self._queue.get(timeout=remaining)
                    except queue.Empty:
                        break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
                size += len(item.events)
            previous = len(batch)
            metrics.batch_started(size, self._queue.qsize())
            self._commit(batch)
        # Drain anything that raced in before the stop marker.
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                self._commit([item])
        self._writer.close()

    @staticmethod
    def _monotonic() -> float:
        return time.monotonic()

    def _commit(self, batch: list[_Pending]) -> None:
        started = time.monotonic()
        try:
            with tracing.span(
                "sequencer.batch",
                {
                    "auditlog.batch.calls": len(batch),
                    "auditlog.batch.events": sum(len(i.events) for i in batch),
                },
                [item.caller for item in batch],
            ):
                results = self.append_batch(
                    [item.events for item in batch], [item.copy_texts for item in batch]
                )
        except DatabaseUnavailableError as err:
            cause = err.__cause__ or err
            _log.warning("append batch failed: database unavailable: %s", cause.__class__.__name__)
            failure: Exception = UnavailableError(
                "the database is unavailable; retry with the same request_id (a retry never records an event twice)"
            )
            for item in batch:
                item.future.set_exception(failure)
            return
        except AuditLogError as err:
            _log.warning("append batch refused: %s", err)
            for item in batch:
                item.future.set_exception(err)
            return
        except Exception as err:  # noqa: BLE001 - every caller must be answered
            _log.exception("append batch failed")
            for item in batch:
                item.future.set_exception(err)
            return
        if self._head is not None:
            metrics.batch_committed(self._head.sequence, time.monotonic() - started)
        for item, records in zip(batch, results, strict=True):
            item.future.set_result(records)

    def append_batch(
        self,
        requests: Sequence[Sequence[PreparedEvent]],
        copy_texts: Sequence[Sequence[str] | None] | None = None,
    ) -> list[list[EventRecord]]:
        """One transaction for several callers' events; returns each caller's records.

        Idempotent retries are rare, so the batch is first written without looking request_ids up:
        the unique request_id index refuses a retry of a recorded event, and then (only then) the
        batch is rolled back and redone with the lookup, which returns the original records."""
        try:
            try:
                return self._write(requests, copy_texts, lookup=False)
            except DuplicateRequestIdError:
                return self._write(requests, copy_texts, lookup=True)
        except SequenceTakenError:
            # A row planted beyond the head after the tail was read under the lock.
            self._head = None
            reason = self.check_tail()
            if reason is None:
                raise
            raise FailedPreconditionError(reason) from None
        except BaseException:
            self._head = None  # whatever the head is now, the next batch reads it under the lock
            raise

    def _write(
        self,
        requests: Sequence[Sequence[PreparedEvent]],
        copy_texts: Sequence[Sequence[str] | None] | None,
        *,
        lookup: bool,
    ) -> list[list[EventRecord]]:
        expected = self._head
        if not lookup and expected is not None and sum(map(len, requests)) <= ONE_TRIP_MAX_EVENTS:
            self._writer.connect()  # unreachable: fails here, with nothing sent
            batch = Batch(requests, expected, {}, self._recorded_at(expected))
            records = [record for record, _ in batch.build()]
            try:
                with tracing.span("db.transaction", _DB_ATTRIBUTES):
                    written = self._writer.append_at_once(expected, records, self._head_move(batch))
            except DatabaseUnavailableError:
                # The connection failed with COMMIT sent or not (say, PostgreSQL dropped it since
                # the last batch): the batch is all or nothing, so its first id tells which. Not
                # committed: written under the lock below, on a fresh connection.
                written = self._writer.get(records[0].id) is not None
                if written:
                    _log.info("append batch committed although its connection failed")
            if written:
                self._committed(batch)
                return batch.results
            # Another process moved the head since this one last wrote: nothing was written.
            self._head = None
        with tracing.span("db.transaction", _DB_ATTRIBUTES), self._writer.transaction() as (tx, head):
            self._stopped_reason = tail_mismatch(head, tx.stored_tail)
            if self._stopped_reason is not None:
                tx.end_unchanged()
                raise FailedPreconditionError(self._stopped_reason)
            known: dict[str, EventRecord] = {}
            if lookup:
                known = tx.find_by_request_ids(
                    sorted({p.event.request_id for events in requests for p in events if p.event.request_id})
                )
            batch = Batch(requests, head, known, self._recorded_at(head), copy_texts)
            if all(p.event.request_id and p.event.request_id in known for events in requests for p in events):
                # Retries only: nothing to write (the loop just collects the original records).
                for _ in batch.build():
                    pass
                tx.end_unchanged()
                self._head = head
                return batch.results
            # The records are built while COPY sends them, so PostgreSQL stores one chunk while
            # Python builds the next; nothing is visible to anyone before the commit below.
            tx.insert(batch.build())
            tx.finish(self._head_move(batch))
        self._committed(batch)
        return batch.results

    def _recorded_at(self, head: HeadState) -> datetime:
        # recorded_at never decreases along the sequence, whatever the clocks of other processes.
        now = _as_utc(self._clock())
        return now if head.recorded_at is None or now > head.recorded_at else head.recorded_at

    def _head_move(self, batch: Batch) -> HeadMove:
        """What committing batch does to the head, with the batch's users not yet written to
        user_hours for its hour by this process."""
        hour = hour_of(batch.recorded_at)
        seen = self._users_seen if hour == self._users_hour else set()
        users = sorted({record.user_id for record in batch.new_records if record.user_id} - seen)
        return HeadMove(batch.head, batch.high_risk(), (hour, users) if users else None)

    def _committed(self, batch: Batch) -> None:
        self._head = batch.head
        hour = hour_of(batch.recorded_at)
        if hour != self._users_hour:
            self._users_hour, self._users_seen = hour, set()
        self._users_seen.update(record.user_id for record in batch.new_records if record.user_id)


class Batch:
    """The records of one batch placed after head: new events get the next sequences and hashes,
    retries of known request_ids their original records."""

    def __init__(
        self,
        requests: Sequence[Sequence[PreparedEvent]],
        head: HeadState,
        known: dict[str, EventRecord],
        recorded_at: datetime,
        copy_texts: Sequence[Sequence[str] | None] | None = None,
    ) -> None:
        self._requests = requests
        self._copy_texts = copy_texts or [None] * len(requests)
        self._known = known
        self._builder = RecordBuilder(recorded_at)
        self.recorded_at = recorded_at
        self.sequence, self.prev = head.sequence, head.chain_hash
        self.new_records: list[EventRecord] = []
        self.results: list[list[EventRecord]] = [[] for _ in requests]

    @property
    def head(self) -> HeadState:
        """The head once the batch is written."""
        return HeadState(self.sequence, self.prev, self.recorded_at)

    def high_risk(self) -> int:
        return sum(1 for record in self.new_records if record.risk_level in HIGH_RISK_LEVELS)

    def build(self) -> Iterator[tuple[EventRecord, str | None]]:
        """Builds the new records in order (filling results), yielding each with its copy_fields
        text when the caller made it (None otherwise)."""
        known, builder = self._known, self._builder
        for events, texts, records in zip(self._requests, self._copy_texts, self.results, strict=True):
            for index, prepared in enumerate(events):
                request_id = prepared.event.request_id
                existing = known.get(request_id) if request_id else None
                if existing is None:
                    self.sequence += 1
                    existing = builder.build(prepared, sequence=self.sequence, prev=self.prev)
                    self.prev = existing.chain_hash
                    self.new_records.append(existing)
                    if request_id:
                        known[request_id] = existing
                    records.append(existing)
                    yield existing, None if texts is None else texts[index]
                else:
                    records.append(existing)
