"""VerifyChain's work: verify a range of the stored log against its head, and record the result
(docs/integrity.md, section 4). Storage-agnostic: it reads through the LogReader seam."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from auditlog.domain.requests import VerifyRange
from auditlog.domain.verification import BreakKind, LogHead, VerificationResult, verify_stored
from auditlog.errors import FieldViolation, InvalidArgumentError
from auditlog.storage.api import LogReader, VerificationLog


@dataclass(frozen=True)
class Verification:
    result: VerificationResult
    # The head the range was checked against.
    head: LogHead
    verified_at: datetime


def verify_chain(
    reader: LogReader, records: VerificationLog, clock: Callable[[], datetime], wanted: VerifyRange
) -> Verification:
    """Verifies wanted, records the signed result (whole: from 0 to the head) and returns it."""
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
    result, head, whole = _verify(reader, wanted)
    verified_at = clock()
    records.record(result, whole=whole, verified_at=verified_at)
    return Verification(result, head, verified_at)


def _verify(reader: LogReader, wanted: VerifyRange) -> tuple[VerificationResult, LogHead, bool]:
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
        result = verify_stored(
            events,
            start_sequence=start,
            prev_chain_hash=prev,
            end_sequence=None if reaches_head else end,
            head=head if reaches_head else None,
        )
        return result, head, whole
