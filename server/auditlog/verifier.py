"""VerifyChain's work: verify a range of the stored log against its head, and record the result
(docs/integrity.md, section 4). Storage-agnostic: it reads through the LogReader seam."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime

from auditlog.domain.anchored import AnchorCheck, SignedCheckpoint
from auditlog.domain.requests import VerifyRange
from auditlog.domain.verification import BreakKind, LogHead, StoredEvent, VerificationResult, verify_stored
from auditlog.errors import FieldViolation, InvalidArgumentError
from auditlog.storage.api import LogReader, VerificationLog


@dataclass(frozen=True)
class Verification:
    result: VerificationResult
    # The head the range was checked against.
    head: LogHead
    verified_at: datetime


def verify_chain(
    reader: LogReader,
    records: VerificationLog,
    clock: Callable[[], datetime],
    wanted: VerifyRange,
    anchored: Callable[[], list[SignedCheckpoint]] | None = None,
) -> Verification:
    """Verifies wanted, records the signed result (whole: from 0 to the head) and returns it.
    anchored: the checkpoints anchored outside the database, which a range from 0 must match."""
    head_now = reader.head()
    if wanted.start > max(head_now.sequence, 0):
        raise InvalidArgumentError(
            [
                FieldViolation(
                    "start_sequence",
                    f"got {wanted.start}, want at most the head sequence {head_now.sequence}",
                )
            ]
        )
    checkpoints = anchored() if anchored is not None and wanted.start == 0 else []
    result, head, whole = _verify(reader, wanted, checkpoints)
    verified_at = clock()
    records.record(result, whole=whole, verified_at=verified_at)
    return Verification(result, head, verified_at)


def _verify(
    reader: LogReader, wanted: VerifyRange, anchored: list[SignedCheckpoint]
) -> tuple[VerificationResult, LogHead, bool]:
    """The result, the head it was checked against, and whether it covered the whole log."""
    start, end = wanted.start, wanted.end
    # A range that reaches the head checks the head too; the snapshot is read to the end then.
    with reader.verification_snapshot(start) as (head, prev, events):
        reaches_head = wanted.verify_all or end is None or end >= head.sequence
        whole = start == 0 and reaches_head
        if prev is None:
            # The event before the range is missing: the range cannot be anchored.
            result = VerificationResult(
                valid=False,
                events_checked=0,
                start_sequence=None,
                end_sequence=None,
                first_bad_sequence=start - 1,
                break_kind=BreakKind.GAP,
                message=f"event {start - 1} (the range's anchor) is missing",
            )
            return result, head, whole
        if not reaches_head and end is not None:
            anchored = [c for c in anchored if c.tree_size <= end + 1]
        check = AnchorCheck(anchored)
        result = verify_stored(
            _fed(events, check) if anchored else events,
            start_sequence=start,
            prev_chain_hash=prev,
            end_sequence=None if reaches_head else end,
            head=head if reaches_head else None,
        )
        # A chain break before the first checkpoint not matched is the one to report.
        mismatch = check.finish() if result.valid else check.first_mismatch()
        if mismatch is None or (
            result.first_bad_sequence is not None and result.first_bad_sequence < mismatch.tree_size - 1
        ):
            return result, head, whole
        return _checkpoint_break(result, mismatch, check.leaves), head, whole


def _fed(events: Iterable[StoredEvent], check: AnchorCheck) -> Iterator[StoredEvent]:
    for event in events:
        check.feed(event.leaf_hash)
        yield event


def _checkpoint_break(
    result: VerificationResult, mismatch: SignedCheckpoint, leaves: int
) -> VerificationResult:
    if leaves < mismatch.tree_size:
        why = f"the log has only {leaves} events"
    else:
        why = f"the first {mismatch.tree_size} events lead to another root"
    return replace(
        result,
        valid=False,
        first_bad_sequence=mismatch.tree_size - 1,
        break_kind=BreakKind.CHECKPOINT,
        message=(
            f"the checkpoint of tree size {mismatch.tree_size}, anchored outside the database, is no"
            f" longer matched: {why} (a rewrite, truncation or fork)"
        ),
    )
