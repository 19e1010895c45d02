"""Chain verification as a pure fold over stored events in sequence order (DESIGN.md, integrity 4).

The verifier recomputes each event's canonical bytes from its stored columns, so a change to any
column is caught, and keeps only the previous chain hash: memory stays bounded however long the log.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from auditlog.domain.canonical import ZERO_HASH, chain_hash
from auditlog.domain.chain import record_leaf_hash
from auditlog.domain.event import EventRecord


class BreakKind(StrEnum):
    """What kind of break verification found first."""

    LEAF_HASH = "leaf_hash"
    CHAIN_HASH = "chain_hash"
    LINK = "link"
    GAP = "gap"
    HEAD = "head"


@dataclass(frozen=True)
class LogHead:
    """The recorded head: the last sequence (-1 when empty) and its chain hash."""

    sequence: int
    chain_hash: bytes


@dataclass(frozen=True)
class VerificationResult:
    valid: bool
    events_checked: int
    start_sequence: int | None
    end_sequence: int | None
    first_bad_sequence: int | None = None
    break_kind: BreakKind | None = None
    message: str = ""


def verify_records(
    records: Iterable[EventRecord],
    *,
    start_sequence: int,
    prev_chain_hash: bytes,
    end_sequence: int | None,
    head: LogHead | None,
) -> VerificationResult:
    """Checks records (ascending sequence, starting at start_sequence) up to end_sequence.

    prev_chain_hash is the trusted chain hash before start_sequence (ZERO_HASH for 0). With head
    given, the records must end exactly at the head's sequence with its chain hash; records
    beyond end_sequence are then also read, so an appended-behind-the-back row is caught.
    """
    expected = start_sequence
    prev = prev_chain_hash
    checked = 0
    last_seen: int | None = None

    def broken(sequence: int, kind: BreakKind, message: str) -> VerificationResult:
        return VerificationResult(
            valid=False,
            events_checked=checked,
            start_sequence=start_sequence if checked else None,
            end_sequence=last_seen,
            first_bad_sequence=sequence,
            break_kind=kind,
            message=message,
        )

    for record in records:
        if end_sequence is not None and record.sequence > end_sequence and head is None:
            break
        if head is not None and record.sequence > head.sequence:
            return broken(
                record.sequence,
                BreakKind.HEAD,
                f"event {record.sequence} lies beyond the recorded head {head.sequence}",
            )
        if record.sequence != expected:
            if record.sequence > expected:
                return broken(
                    expected, BreakKind.GAP, f"event {expected} is missing (next found: {record.sequence})"
                )
            return broken(record.sequence, BreakKind.GAP, f"event {record.sequence} appears more than once")
        if record.prev_hash != prev:
            return broken(
                record.sequence,
                BreakKind.LINK,
                f"event {record.sequence}'s prev_hash does not match event {record.sequence - 1}'s chain hash",
            )
        leaf = record_leaf_hash(record)
        checked += 1
        last_seen = record.sequence
        if leaf != record.leaf_hash:
            return broken(
                record.sequence,
                BreakKind.LEAF_HASH,
                f"event {record.sequence}'s contents do not match its leaf hash",
            )
        if chain_hash(prev, leaf) != record.chain_hash:
            return broken(
                record.sequence,
                BreakKind.CHAIN_HASH,
                f"event {record.sequence}'s chain hash is not SHA-256(prev_hash || leaf hash)",
            )
        prev = record.chain_hash
        expected += 1

    if head is not None:
        if expected <= head.sequence:
            return broken(
                expected,
                BreakKind.HEAD,
                f"the log ends at event {expected - 1} but the recorded head is event {head.sequence}",
            )
        if head.sequence >= 0 and prev != head.chain_hash:
            return broken(
                head.sequence,
                BreakKind.HEAD,
                f"event {head.sequence}'s chain hash differs from the recorded head",
            )
    elif end_sequence is not None and expected <= end_sequence:
        return broken(
            expected, BreakKind.GAP, f"event {expected} is missing (the range ends at {end_sequence})"
        )

    scope = "the whole log" if head is not None else "the range"
    return VerificationResult(
        valid=True,
        events_checked=checked,
        start_sequence=start_sequence if checked else None,
        end_sequence=last_seen,
        message=f"{scope} is intact: {checked} events checked",
    )


__all__ = ["ZERO_HASH", "BreakKind", "LogHead", "VerificationResult", "record_leaf_hash", "verify_records"]
