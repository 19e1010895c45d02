"""The single writer of the log (DESIGN.md, "Writing: the sequencer").

Request threads hand events to `Sequencer.append`; one thread drains what is pending (up to a batch
limit, waiting at most max_wait_seconds for more, see `_run`), and in one transaction locks the log head,
resolves idempotent retries, assigns sequences and recorded_at, hashes, inserts, moves the head and
commits. Only then is every caller in the batch answered. A failed batch fails every caller in it
and leaves nothing behind (the transaction rolls back).

The wait is adaptive: a batch waits for more callers only while it is smaller than the one before
(see `_run`), so a lone caller pays no batching delay and concurrent callers share transactions.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg
import psycopg_pool

from auditlog.domain.chain import PreparedEvent, RecordBuilder, prepare_event
from auditlog.domain.event import HIGH_RISK_LEVELS, EventRecord, NewEvent
from auditlog.errors import ShuttingDownError, UnavailableError
from auditlog.storage.events import AppendConnection, DuplicateRequestIdError, EventStore, HeadState, hour_of

_log = logging.getLogger(__name__)
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Pending:
    events: Sequence[PreparedEvent]
    future: Future[list[EventRecord]] = field(default_factory=Future)


def _as_utc(value: datetime) -> datetime:
    # A datetime holds microseconds already (the log's precision); only the zone needs normalising.
    return value.astimezone(UTC)


def random_uuids(count: int) -> Iterator[uuid.UUID]:
    """count version-4 UUIDs from one read of the system's random source (uuid4 reads it per UUID)."""
    raw = os.urandom(16 * count)
    for offset in range(0, len(raw), 16):
        yield uuid.UUID(bytes=raw[offset : offset + 16], version=4)


class Sequencer:
    """Orders appends into one chain; see the module docstring."""

    def __init__(
        self,
        store: EventStore,
        *,
        clock: Clock = utc_now,
        max_batch_events: int = 1_000,
        max_wait_seconds: float = 0.002,
    ) -> None:
        self._store = store
        self._writer = AppendConnection(store.pool)
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

    def start(self) -> None:
        self._accepting = True
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Refuses new appends, finishes every pending one, then ends the writer thread."""
        with self._lock:
            if not self._accepting:
                return
            self._accepting = False
            self._queue.put(None)
        self._thread.join(timeout)

    def append(self, events: Sequence[NewEvent], timeout: float | None = 60.0) -> list[EventRecord]:
        """Records events (all or nothing, in order) and returns them once committed."""
        # Ids and the position-free part of the canonical bytes are made here, in the caller's
        # thread, while the sequencer thread writes earlier batches.
        pending = _Pending(
            [prepare_event(e, i) for e, i in zip(events, random_uuids(len(events)), strict=True)]
        )
        with self._lock:
            if not self._accepting:
                raise ShuttingDownError("the server is shutting down; retry against another instance")
            self._queue.put(pending)
        try:
            return pending.future.result(timeout)
        except concurrent.futures.TimeoutError:
            # The batch may still commit after this answer: only the caller's request_id makes
            # the retry safe, so say so rather than report an internal error.
            raise UnavailableError(
                "the append did not finish in time and may still be recorded; retry with the same request_id"
            ) from None

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
        try:
            results = self.append_batch([item.events for item in batch])
        except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as err:
            _log.warning("append batch failed: database unavailable: %s", err.__class__.__name__)
            failure: Exception = UnavailableError("the database is unavailable; the events were not recorded")
            for item in batch:
                item.future.set_exception(failure)
            return
        except Exception as err:  # noqa: BLE001 - every caller must be answered
            _log.exception("append batch failed")
            for item in batch:
                item.future.set_exception(err)
            return
        for item, records in zip(batch, results, strict=True):
            item.future.set_result(records)

    def append_batch(self, requests: Sequence[Sequence[PreparedEvent]]) -> list[list[EventRecord]]:
        """One transaction for several callers' events; returns each caller's records.

        Idempotent retries are rare, so the batch is first written without looking request_ids up:
        the unique request_id index refuses a retry of a recorded event, and then (only then) the
        batch is rolled back and redone with the lookup, which returns the original records."""
        if any(p.event.request_id for events in requests for p in events):
            try:
                return self._append_batch(requests, lookup=False)
            except DuplicateRequestIdError:
                pass
        return self._append_batch(requests, lookup=True)

    def _append_batch(
        self, requests: Sequence[Sequence[PreparedEvent]], *, lookup: bool
    ) -> list[list[EventRecord]]:
        with self._writer.transaction() as (tx, head):
            known: dict[str, EventRecord] = {}
            if lookup:
                known = tx.find_by_request_ids(
                    sorted({p.event.request_id for events in requests for p in events if p.event.request_id})
                )
            # recorded_at never decreases along the sequence, whatever the clocks of other processes.
            now = _as_utc(self._clock())
            recorded_at = now if head.recorded_at is None or now > head.recorded_at else head.recorded_at
            sequence, prev = head.sequence, head.chain_hash
            builder = RecordBuilder(recorded_at)
            new_records: list[EventRecord] = []
            results: list[list[EventRecord]] = [[] for _ in requests]

            def build() -> Iterator[EventRecord]:
                """Builds the batch's new records in order (filling results), yielding each."""
                nonlocal sequence, prev
                for events, records in zip(requests, results, strict=True):
                    for prepared in events:
                        request_id = prepared.event.request_id
                        existing = known.get(request_id) if request_id else None
                        if existing is None:
                            sequence += 1
                            existing = builder.build(prepared, sequence=sequence, prev=prev)
                            prev = existing.chain_hash
                            new_records.append(existing)
                            if request_id:
                                known[request_id] = existing
                            records.append(existing)
                            yield existing
                        else:
                            records.append(existing)

            if all(p.event.request_id and p.event.request_id in known for events in requests for p in events):
                # Retries only: nothing to write (the loop just collects the original records).
                for _ in build():
                    pass
                tx.end_unchanged()
                return results
            # The records are built while COPY sends them, so PostgreSQL stores one chunk while
            # Python builds the next; nothing is visible to anyone before the commit below.
            tx.insert(build())
            hour = hour_of(recorded_at)
            seen = self._users_seen if hour == self._users_hour else set()
            users = sorted({record.user_id for record in new_records if record.user_id} - seen)
            high_risk = sum(1 for record in new_records if record.risk_level in HIGH_RISK_LEVELS)
            tx.finish(
                HeadState(sequence, prev, recorded_at),
                high_risk_added=high_risk,
                user_hour=(hour, users) if users else None,
            )
        if hour != self._users_hour:
            self._users_hour, self._users_seen = hour, set()
        self._users_seen.update(users)
        return results
