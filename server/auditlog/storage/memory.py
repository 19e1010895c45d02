"""An in-memory implementation of the storage seam (storage.api), for unit tests of the servicers,
the sequencer and the export runner: no database. Not used by the service itself.

Set `unavailable` to make every call raise DatabaseUnavailableError, as an unreachable database does.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, replace
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from auditlog.domain.canonical import ZERO_HASH
from auditlog.domain.event import HIGH_RISK_LEVELS, EventRecord
from auditlog.domain.filters import EventFilter
from auditlog.domain.jcs import jcs_text
from auditlog.domain.merkle import (
    TILE_WIDTH,
    consistency_proof_from_leaves,
    inclusion_proof_from_leaves,
    root_from_leaves,
)
from auditlog.domain.notes import Checkpoint, Signer, sign_note
from auditlog.domain.schema import FIELDS, EventRow, Kind, optional, values_by_kind
from auditlog.domain.verification import LogHead, StoredEvent, VerificationResult, stored_event
from auditlog.errors import DatabaseUnavailableError
from auditlog.export.jobs import ExportJob, FinishedExport, JobStatus, requester_busy
from auditlog.storage.api import (
    DuplicateRequestIdError,
    HeadMove,
    HeadState,
    LatestVerifications,
    PageQuery,
    SearchRow,
    SequenceTakenError,
    SnapshotSummary,
    Stats,
    StoredTail,
    VerificationRecord,
)
from auditlog.storage.postgres.api_keys import (
    ApiKey,
    digest_of,
    name_taken,
    new_secret,
    no_key_named,
    validate_key_spec,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _matches(record: EventRecord, event_filter: EventFilter) -> bool:
    for name, wanted in event_filter.texts:
        if getattr(record, name) != wanted:
            return False
    if event_filter.start_date is not None and record.recorded_at < event_filter.start_date:
        return False
    return event_filter.end_date is None or record.recorded_at <= event_filter.end_date


_search_values = values_by_kind(
    "_search_values",
    FIELDS,
    {Kind.UUID: str, Kind.JSON: jcs_text, Kind.TIMESTAMP: optional(_micros), Kind.HASH: bytes.hex},
)


def search_row(record: EventRecord) -> SearchRow:
    """record as storage.postgres.search reads it (API texts), a schema.EventRow."""
    return EventRow._make(_search_values(record))


class _Transaction:
    def __init__(self, log: MemoryLog) -> None:
        self._log = log
        self._pending: list[EventRecord] = []
        self.stored_tail: StoredTail = log.tail()
        self.ended = False

    def find_by_request_ids(self, request_ids: Sequence[str]) -> dict[str, EventRecord]:
        self._log.check()
        return {r: self._log.by_request_id[r] for r in request_ids if r in self._log.by_request_id}

    def insert(self, records: Iterable[tuple[EventRecord, str | None]]) -> None:
        self._log.check()
        for record, _ in records:
            self._pending.append(record)
        self._log.refuse_duplicates(self._pending)

    def end_unchanged(self) -> None:
        self.ended = True

    def finish(self, move: HeadMove) -> None:
        self._log.check()
        self._log.commit(self._pending, move.head)
        self.ended = True


class MemoryLog:
    """LogWriter, LogReader and VerificationLog over lists; one lock makes each call atomic."""

    def __init__(self) -> None:
        self.events: list[EventRecord] = []
        self.by_id: dict[uuid.UUID, EventRecord] = {}
        self.by_request_id: dict[str, EventRecord] = {}
        self.head_state = HeadState(-1, ZERO_HASH, None)
        self.verifications: list[VerificationRecord] = []
        self.unavailable = False
        self._lock = threading.RLock()

    def check(self) -> None:
        if self.unavailable:
            raise DatabaseUnavailableError

    def tail(self) -> StoredTail:
        return (self.events[-1].sequence, self.events[-1].chain_hash) if self.events else None

    def refuse_duplicates(self, records: Sequence[EventRecord]) -> None:
        for record in records:
            if record.request_id and record.request_id in self.by_request_id:
                raise DuplicateRequestIdError
            if record.sequence <= (self.events[-1].sequence if self.events else -1):
                raise SequenceTakenError

    def commit(self, records: Sequence[EventRecord], head: HeadState) -> None:
        for record in records:
            self.events.append(record)
            self.by_id[record.id] = record
            if record.request_id:
                self.by_request_id[record.request_id] = record
        self.head_state = head

    # -- LogWriter ----------------------------------------------------------------------------

    def head_and_tail(self) -> tuple[HeadState, StoredTail]:
        self.check()
        return self.head_state, self.tail()

    def connect(self) -> None:
        self.check()

    def append_at_once(self, expected: HeadState, records: Sequence[EventRecord], move: HeadMove) -> bool:
        with self._lock:
            self.check()
            current = (self.head_state.sequence, self.head_state.chain_hash)
            if current != (expected.sequence, expected.chain_hash) or self.tail() != (
                None if expected.sequence < 0 else current
            ):
                return False
            self.refuse_duplicates(records)
            self.commit(records, move.head)
            return True

    @contextmanager
    def transaction(self) -> Iterator[tuple[_Transaction, HeadState]]:
        with self._lock:
            self.check()
            tx = _Transaction(self)
            yield tx, self.head_state
            if not tx.ended:
                raise RuntimeError("an append transaction ended without finish()")

    def close(self) -> None:
        pass

    # -- LogReader ----------------------------------------------------------------------------

    def ping(self, timeout: float = 2.0) -> None:
        self.check()

    def head(self) -> HeadState:
        self.check()
        return self.head_state

    def get(self, event_id: uuid.UUID) -> EventRecord | None:
        self.check()
        return self.by_id.get(event_id)

    def _matching(self, event_filter: EventFilter, max_sequence: int | None = None) -> list[EventRecord]:
        self.check()
        with self._lock:
            return [
                r
                for r in self.events
                if _matches(r, event_filter) and (max_sequence is None or r.sequence <= max_sequence)
            ]

    def list_page(self, event_filter: EventFilter, page: PageQuery) -> list[EventRecord]:
        records = self._matching(event_filter)
        if page.descending:
            records.reverse()
        after = page.after_sequence
        if after is not None:
            records = [r for r in records if (r.sequence < after if page.descending else r.sequence > after)]
        return records[page.offset : page.offset + page.limit]

    def iter_matching(
        self, event_filter: EventFilter, max_sequence: int | None = None
    ) -> Iterator[EventRecord]:
        yield from self._matching(event_filter, max_sequence)

    def search_rows(self, event_filter: EventFilter) -> Generator[list[SearchRow], None, None]:
        rows = [search_row(r) for r in self._matching(event_filter)]
        for start in range(0, len(rows), 1_000):
            yield rows[start : start + 1_000]

    def search_page(self, event_filter: EventFilter, after_sequence: int, limit: int) -> list[SearchRow]:
        records = [r for r in self._matching(event_filter) if r.sequence > after_sequence]
        return [search_row(r) for r in records[:limit]]

    def summarise(self, event_filter: EventFilter, max_sequence: int) -> SnapshotSummary:
        records = self._matching(event_filter, max_sequence)
        if not records:
            return SnapshotSummary(0, None, None, None)
        return SnapshotSummary(
            len(records), records[0].sequence, records[-1].sequence, records[-1].chain_hash
        )

    @contextmanager
    def verification_snapshot(
        self, start_sequence: int
    ) -> Iterator[tuple[LogHead, bytes | None, Iterator[StoredEvent]]]:
        self.check()
        with self._lock:
            events = [r for r in self.events if r.sequence >= start_sequence]
            head = LogHead(self.head_state.sequence, self.head_state.chain_hash)
            prev: bytes | None = ZERO_HASH
            if start_sequence > 0:
                before = [r for r in self.events if r.sequence == start_sequence - 1]
                prev = before[0].chain_hash if before else None
        yield head, prev, iter([stored_event(r) for r in events])

    def stats(self, now: datetime) -> Stats:
        self.check()
        recent = [r for r in self.events if r.recorded_at >= now - timedelta(hours=24)]
        return Stats(
            total_events=self.head_state.sequence + 1,
            events_last_24h=len(recent),
            unique_users_last_24h=len({r.user_id for r in recent if r.user_id}),
            high_risk_events=sum(1 for r in self.events if r.risk_level in HIGH_RISK_LEVELS),
            head=self.head_state,
        )

    # -- VerificationLog ----------------------------------------------------------------------

    def record(self, result: VerificationResult, *, whole: bool, verified_at: datetime) -> None:
        self.check()
        self.verifications.append(VerificationRecord.of(result, whole=whole, verified_at=verified_at))

    def latest(self) -> LatestVerifications:
        self.check()
        newest = sorted(self.verifications, key=lambda v: v.verified_at, reverse=True)
        whole = next((v for v in newest if v.verify_all), None)
        failure = next((v for v in newest if not v.valid), None)
        return LatestVerifications(whole, failure, 0)


class MemoryJobs:
    """ExportJobQueue over a dict."""

    def __init__(self) -> None:
        self.jobs: dict[uuid.UUID, ExportJob] = {}
        self.unavailable = False
        self._lock = threading.Lock()

    def _check(self) -> None:
        if self.unavailable:
            raise DatabaseUnavailableError

    def create(
        self, job: ExportJob, *, max_active: int | None = None, max_active_requester: int | None = None
    ) -> bool:
        self._check()
        with self._lock:
            running = [j for j in self.jobs.values() if j.status in (JobStatus.PENDING, JobStatus.RUNNING)]
            mine = sum(1 for j in running if j.requested_by == job.requested_by)
            if max_active_requester is not None and mine >= max_active_requester:
                raise requester_busy(job.requested_by, max_active_requester)
            active = len(running)
            if max_active is not None and active >= max_active:
                return False
            self.jobs[job.id] = job
            return True

    def get(self, job_id: uuid.UUID) -> ExportJob | None:
        self._check()
        return self.jobs.get(job_id)

    def list_page(self, limit: int, after: tuple[datetime, uuid.UUID] | None) -> list[ExportJob]:
        self._check()
        jobs = sorted(self.jobs.values(), key=lambda j: (j.created_at, j.id.bytes), reverse=True)
        if after is not None:
            jobs = [j for j in jobs if (j.created_at, j.id.bytes) < (after[0], after[1].bytes)]
        return jobs[:limit]

    def claim_next(self, now: datetime) -> ExportJob | None:
        self._check()
        with self._lock:
            pending = sorted(
                (j for j in self.jobs.values() if j.status is JobStatus.PENDING), key=lambda j: j.created_at
            )
            if not pending:
                return None
            job = replace(
                pending[0], status=JobStatus.RUNNING, started_at=now, attempts=pending[0].attempts + 1,
                rows_written=0, error="",
            )  # fmt: skip
            self.jobs[job.id] = job
            return job

    def _update(self, job_id: uuid.UUID, **changes: object) -> bool:
        self._check()
        with self._lock:
            job = self.jobs.get(job_id)
            if job is None or job.status is not JobStatus.RUNNING:
                return False
            self.jobs[job_id] = replace(job, **changes)  # type: ignore[arg-type]
            return True

    def set_expected(self, job_id: uuid.UUID, rows_expected: int, now: datetime) -> bool:
        return self._update(job_id, rows_expected=rows_expected)

    def set_progress(self, job_id: uuid.UUID, rows_written: int, now: datetime) -> bool:
        return self._update(job_id, rows_written=rows_written)

    def complete(self, job_id: uuid.UUID, finished: FinishedExport, now: datetime) -> bool:
        return self._update(job_id, status=JobStatus.COMPLETED, finished_at=now, **asdict(finished))

    def fail(self, job_id: uuid.UUID, reason: str, now: datetime) -> bool:
        return self._update(job_id, status=JobStatus.FAILED, error=reason, finished_at=now)

    def release(self, job_id: uuid.UUID) -> bool:
        job = self.jobs.get(job_id)
        attempts = max((job.attempts if job else 1) - 1, 0)
        return self._update(job_id, status=JobStatus.PENDING, rows_written=0, attempts=attempts)

    def heartbeat(self, job_ids: Sequence[uuid.UUID], now: datetime) -> None:
        self._check()

    def recover_abandoned(self, now: datetime, lease: timedelta, max_attempts: int) -> tuple[int, int]:
        self._check()
        return 0, 0


class MemoryCheckpoint(NamedTuple):
    tree_size: int
    root: bytes
    note: str


class MemoryLeaf(NamedTuple):
    id: str
    sequence: int
    leaf_hash: bytes


class MemoryTree:
    """TreeReads (and its TreeView) over a MemoryLog's events, from the pure Merkle functions;
    sign() signs a checkpoint of the log as the integrator does (auditlog.checkpoints)."""

    def __init__(self, log: MemoryLog, signer: Signer) -> None:
        self._log = log
        self._signer = signer
        self.checkpoints: dict[int, MemoryCheckpoint] = {}

    def sign(self) -> MemoryCheckpoint:
        """Signs and records a checkpoint of the whole log as it is now."""
        self._log.check()
        size = self._log.head_state.sequence + 1
        root = root_from_leaves(self._leaf_hashes(size))
        note = sign_note(Checkpoint(self._signer.name, size, root).body(), [self._signer])
        self.checkpoints[size] = MemoryCheckpoint(size, root, note)
        return self.checkpoints[size]

    def _leaf_hashes(self, size: int) -> list[bytes]:
        """Leaf hashes 0 to size - 1; RuntimeError when an event is missing, as a stored tree with
        rows missing below the head fails (storage.tree.TreeStorageError)."""
        records = self._log.events[:size]
        if len(records) != size or any(r.sequence != i for i, r in enumerate(records)):
            raise RuntimeError(f"events 0 to {size - 1} are not all stored")
        return [r.leaf_hash for r in records]

    @contextmanager
    def session(self) -> Iterator[MemoryTree]:
        self._log.check()
        yield self

    def latest(self) -> MemoryCheckpoint | None:
        self._log.check()
        return self.checkpoints[max(self.checkpoints)] if self.checkpoints else None

    def checkpoint(self, size: int) -> MemoryCheckpoint | None:
        self._log.check()
        return self.checkpoints.get(size)

    def leaf(self, *, event_id: uuid.UUID | None = None, sequence: int | None = None) -> MemoryLeaf | None:
        self._log.check()
        if event_id is not None:
            record = self._log.by_id.get(event_id)
        else:
            record = next((r for r in self._log.events if r.sequence == sequence), None)
        return None if record is None else MemoryLeaf(str(record.id), record.sequence, record.leaf_hash)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        self._log.check()
        return inclusion_proof_from_leaves(index, self._leaf_hashes(size))

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        self._log.check()
        return consistency_proof_from_leaves(first, self._leaf_hashes(second))

    def tile(self, level: int, index: int, width: int) -> bytes:
        self._log.check()
        span = TILE_WIDTH**level  # leaves under one hash of this level
        first = index * TILE_WIDTH
        leaves = self._leaf_hashes((first + width) * span)
        return b"".join(
            root_from_leaves(leaves[n * span : (n + 1) * span]) for n in range(first, first + width)
        )


class MemoryKeys:
    """KeyStore over a dict, validating and refusing as storage.api_keys does."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self.keys: dict[str, ApiKey] = {}
        self.digests: dict[bytes, str] = {}
        self.unavailable = False
        self._clock = clock

    def _check(self) -> None:
        if self.unavailable:
            raise DatabaseUnavailableError

    def create_key(self, name: str, role: str) -> tuple[ApiKey, str]:
        self._check()
        checked = validate_key_spec(name, role)
        if name in self.keys:
            raise name_taken(name)
        secret = new_secret()
        self.keys[name] = ApiKey(name, checked, self._clock(), None, None)
        self.digests[digest_of(secret)] = name
        return self.keys[name], secret

    def list_keys(self) -> list[ApiKey]:
        self._check()
        by_name = sorted(self.keys.values(), key=lambda k: k.name)
        return sorted(by_name, key=lambda k: k.created_at, reverse=True)

    def revoke_key(self, name: str) -> ApiKey:
        self._check()
        key = self.keys.get(name)
        if key is None:
            raise no_key_named(name)
        if key.revoked_at is None:
            self.keys[name] = key = replace(key, revoked_at=self._clock())
        return key
