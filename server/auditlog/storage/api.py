"""The storage seam: what the sequencer, the servicers and the export runner need from storage.

Two implementations satisfy these Protocols: PostgreSQL (the storage.postgres package: reader,
writer, verification_records; and export.jobs) and an in-memory one for unit tests (storage.memory). Callers depend only on this module, never on psycopg or a pool.

Each method states its transaction contract. Failures to reach the database surface as
DatabaseUnavailableError (an UnavailableError); nothing else of the driver leaks through.
"""

from __future__ import annotations

import uuid
from collections.abc import Generator, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from auditlog.domain.event import EventRecord
from auditlog.domain.filters import EventFilter
from auditlog.domain.verification import LogHead, StoredEvent, VerificationResult

if TYPE_CHECKING:
    from auditlog.export.jobs import ExportJob, FinishedExport
    from auditlog.storage.postgres.api_keys import ApiKey


@dataclass(frozen=True)
class HeadState:
    """The log head: the last sequence (-1 when empty), its chain hash and its recorded_at."""

    sequence: int
    chain_hash: bytes
    recorded_at: datetime | None


# The stored tail: the last event row's (sequence, chain hash), None when there are no rows.
StoredTail = tuple[int, bytes] | None
# A row of the search stream: a schema.EventRow of the API's texts (see storage.postgres.search), read by
# name by api.convert.fill_event_proto_from_row.
SearchRow = Any
# The hour a batch's users are recorded under (UTC, on the hour) and the user ids.
UserHour = tuple[datetime, Sequence[str]]


def hour_of(moment: datetime) -> datetime:
    """The start of moment's hour, in UTC."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def tail_mismatch(head: HeadState, tail: StoredTail) -> str | None:
    """Why the stored tail does not match the head, naming the first sequence in doubt; None when
    it matches."""
    if (tail is None and head.sequence < 0) or tail == (head.sequence, head.chain_hash):
        return None
    # The first event missing before the head; else a row beyond it, or its row with another hash.
    last = -1 if tail is None else tail[0]
    sequence = last + 1 if last < head.sequence else last
    return (
        f"the log's stored tail does not match its head at sequence {sequence}:"
        " appends are stopped; run VerifyChain"
    )


@dataclass(frozen=True)
class PageQuery:
    """A page of matches: at most limit, in sequence order (descending or ascending), after
    after_sequence (keyset) or else from offset."""

    descending: bool
    limit: int
    after_sequence: int | None = None
    offset: int = 0


@dataclass(frozen=True)
class HeadMove:
    """What committing a batch does besides adding its rows: the head moves to head, the count of
    high and critical events grows by high_risk_added, and user_hour's users are recorded as
    active in its hour (None: none to record)."""

    head: HeadState
    high_risk_added: int
    user_hour: UserHour | None


@dataclass(frozen=True)
class Stats:
    total_events: int
    events_last_24h: int
    unique_users_last_24h: int
    high_risk_events: int
    head: HeadState


@dataclass(frozen=True)
class SnapshotSummary:
    """What an export will contain, fixed before it writes a row."""

    row_count: int
    first_sequence: int | None
    last_sequence: int | None
    last_chain_hash: bytes | None


@dataclass(frozen=True)
class VerificationRecord:
    """One recorded verification, as stored (break_kind "" when valid)."""

    verified_at: datetime
    verify_all: bool
    valid: bool
    events_checked: int
    start_sequence: int | None
    end_sequence: int | None
    first_bad_sequence: int | None
    break_kind: str
    message: str

    @classmethod
    def of(cls, result: VerificationResult, *, whole: bool, verified_at: datetime) -> VerificationRecord:
        """The record of result (whole: it covered the whole log)."""
        return cls(
            verified_at=verified_at,
            verify_all=whole,
            valid=result.valid,
            events_checked=result.events_checked,
            start_sequence=result.start_sequence,
            end_sequence=result.end_sequence,
            first_bad_sequence=result.first_bad_sequence,
            break_kind=result.break_kind.value if result.break_kind else "",
            message=result.message,
        )


@dataclass(frozen=True)
class LatestVerifications:
    whole: VerificationRecord | None
    failure: VerificationRecord | None
    rejected: int


class DuplicateRequestIdError(Exception):
    """A batch hit the unique request_id index: an idempotent retry of a recorded event. The
    transaction is rolled back; the sequencer redoes the batch looking the originals up."""


class SequenceTakenError(Exception):
    """A batch's sequence is already stored: a row was planted beyond the head. Rolled back."""


class AppendTransaction(Protocol):
    """The write side of one batch, inside one transaction that holds the head lock."""

    # The stored tail read when the head was locked.
    stored_tail: StoredTail

    def find_by_request_ids(self, request_ids: Sequence[str]) -> dict[str, EventRecord]:
        """The stored records of these request_ids, read inside the transaction."""
        ...

    def insert(self, records: Iterable[tuple[EventRecord, str | None]]) -> None:
        """Adds records (each with its copy text, or None) inside the transaction, consuming the
        iterable as it goes. Raises DuplicateRequestIdError or SequenceTakenError (the caller
        must then leave the transaction by raising)."""
        ...

    def end_unchanged(self) -> None:
        """Ends a transaction that wrote nothing, releasing the head lock."""
        ...

    def finish(self, move: HeadMove) -> None:
        """Records the users of the hour, moves the head and commits: after it returns, every
        record inserted is durable and visible to readers."""
        ...


class LogWriter(Protocol):
    """The head-conditional batch append that the one sequencer of a process drives. Used from
    one thread at a time."""

    def head_and_tail(self) -> tuple[HeadState, StoredTail]:
        """The head and the stored tail in one snapshot, outside any append transaction."""
        ...

    def get(self, event_id: uuid.UUID) -> EventRecord | None:
        """A committed record, outside any append transaction (tells whether a batch committed)."""
        ...

    def connect(self) -> None:
        """Makes sure a connection exists, sending nothing that could write."""
        ...

    def append_at_once(self, expected: HeadState, records: Sequence[EventRecord], move: HeadMove) -> bool:
        """One transaction: writes records (built to follow expected) and makes move, only if the
        head and the stored tail are still expected; commits either way. True when written, False
        when nothing was (the head moved). Raises
        DuplicateRequestIdError or SequenceTakenError with nothing written; on
        DatabaseUnavailableError whether it committed is unknown (look records[0] up)."""
        ...

    def transaction(self) -> AbstractContextManager[tuple[AppendTransaction, HeadState]]:
        """A transaction holding the head lock, with the head. The body ends it with finish() or
        end_unchanged(); an exception leaving the body rolls it back, nothing written."""
        ...

    def close(self) -> None:
        """Releases the writer's connection (at shutdown)."""
        ...


class LogReader(Protocol):
    """Reads of the log. Each method reads one consistent snapshot of committed events, in its own
    read transaction (none holds a lock that blocks appends)."""

    def ping(self, timeout: float = 2.0) -> None:
        """Raises when the database does not answer within timeout."""
        ...

    def head(self) -> HeadState:
        """The committed head."""
        ...

    def get(self, event_id: uuid.UUID) -> EventRecord | None:
        """The record with this id, or None."""
        ...

    def list_page(self, event_filter: EventFilter, page: PageQuery) -> list[EventRecord]:
        """The page of matches page asks for."""
        ...

    def iter_matching(
        self, event_filter: EventFilter, max_sequence: int | None = None
    ) -> Iterator[EventRecord]:
        """Every match up to max_sequence, ascending, in one snapshot; bounded memory."""
        ...

    def search_rows(self, event_filter: EventFilter) -> Generator[list[SearchRow], None, None]:
        """Every match, ascending, in batches of SearchRows, in one snapshot. Closing the generator
        ends the read."""
        ...

    def search_page(self, event_filter: EventFilter, after_sequence: int, limit: int) -> list[SearchRow]:
        """At most limit matches after after_sequence, ascending, as SearchRows."""
        ...

    def summarise(self, event_filter: EventFilter, max_sequence: int) -> SnapshotSummary:
        """Count, first and last sequence and last chain hash of the matches up to max_sequence."""
        ...

    def verification_snapshot(
        self, start_sequence: int
    ) -> AbstractContextManager[tuple[LogHead, bytes | None, Iterator[StoredEvent]]]:
        """One repeatable-read snapshot: the head, the chain hash before start_sequence (None when
        that event is missing, 32 zero bytes for 0) and the stored events from start_sequence on."""
        ...

    def stats(self, now: datetime) -> Stats:
        """Totals and the last 24 hours before now, in one snapshot."""
        ...


class VerificationLog(Protocol):
    """Signed verification results (storage.postgres.verification_records)."""

    def record(self, result: VerificationResult, *, whole: bool, verified_at: datetime) -> None:
        """Stores a signed result; committed when it returns."""
        ...

    def latest(self) -> LatestVerifications:
        """The newest genuine whole-log result and failure, in one snapshot."""
        ...


class ExportJobQueue(Protocol):
    """The export jobs and their work queue. Every method is one transaction; status changes of a
    running job apply only while it is still running (a job another process took over is left)."""

    def create(
        self, job: ExportJob, *, max_active: int | None = None, max_active_requester: int | None = None
    ) -> bool:
        """Inserts job; False (nothing inserted) when max_active are pending or running;
        ResourceExhaustedError when max_active_requester of job.requested_by's are; checked and
        inserted as one step for every process."""
        ...

    def get(self, job_id: uuid.UUID) -> ExportJob | None: ...

    def list_page(self, limit: int, after: tuple[datetime, uuid.UUID] | None) -> list[ExportJob]:
        """Newest first; after is the (created_at, id) of the last job of the previous page."""
        ...

    def claim_next(self, now: datetime) -> ExportJob | None:
        """The oldest pending job, made running (attempt counted) for this process only."""
        ...

    def set_expected(self, job_id: uuid.UUID, rows_expected: int, now: datetime) -> bool: ...

    def set_progress(self, job_id: uuid.UUID, rows_written: int, now: datetime) -> bool: ...

    def complete(self, job_id: uuid.UUID, finished: FinishedExport, now: datetime) -> bool: ...

    def fail(self, job_id: uuid.UUID, reason: str, now: datetime) -> bool: ...

    def release(self, job_id: uuid.UUID) -> bool:
        """Back to pending without counting the attempt (the server stops mid-run)."""
        ...

    def heartbeat(self, job_ids: Sequence[uuid.UUID], now: datetime) -> None: ...

    def recover_abandoned(self, now: datetime, lease: timedelta, max_attempts: int) -> tuple[int, int]:
        """Running jobs without a heartbeat for lease go back to pending, or fail after
        max_attempts: (requeued, failed)."""
        ...


class SignedTreeHead(Protocol):
    """A stored signed checkpoint: its tree size, root hash and C2SP note text."""

    @property
    def tree_size(self) -> int: ...

    @property
    def root(self) -> bytes: ...

    @property
    def note(self) -> str: ...


class TreeLeaf(Protocol):
    """An event as a leaf of the tree: its id (text), sequence (leaf index) and leaf hash."""

    @property
    def id(self) -> str: ...

    @property
    def sequence(self) -> int: ...

    @property
    def leaf_hash(self) -> bytes: ...


class TreeView(Protocol):
    """The reads of one LogService request, on one connection. Sizes given to the proofs and tiles
    must lie within the latest signed checkpoint (whose tiles are stored)."""

    def latest(self) -> SignedTreeHead | None:
        """The checkpoint of the largest tree size, None before the first is signed."""
        ...

    def checkpoint(self, size: int) -> SignedTreeHead | None:
        """The checkpoint signed at tree size size, or None."""
        ...

    def leaf(self, *, event_id: uuid.UUID | None = None, sequence: int | None = None) -> TreeLeaf | None:
        """The event with this id (else this sequence) as a leaf, or None."""
        ...

    def inclusion_proof(self, index: int, size: int) -> list[bytes]: ...

    def consistency_proof(self, first: int, second: int) -> list[bytes]: ...

    def tile(self, level: int, index: int, width: int) -> bytes:
        """The first width hashes of tile (level, index), concatenated."""
        ...


class TreeReads(Protocol):
    """The stored Merkle tree and its signed checkpoints, as the log service reads them
    (storage.tree.TreeStore)."""

    def session(self) -> AbstractContextManager[TreeView]:
        """One view for all the reads of one request."""
        ...


class KeyStore(Protocol):
    """The API keys (storage.api_keys). Every method is one transaction."""

    def create_key(self, name: str, role: str) -> tuple[ApiKey, str]:
        """A new key and its secret; InvalidArgumentError for a bad name or role, or a name in use."""
        ...

    def list_keys(self) -> list[ApiKey]:
        """Every key, newest first (then by name)."""
        ...

    def revoke_key(self, name: str) -> ApiKey:
        """Revokes the key named name (a revoked one stays as it was); NotFoundError if none."""
        ...
