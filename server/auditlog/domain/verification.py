"""Chain verification as a pure fold over stored events in sequence order (docs/integrity.md, section 4).

The verifier recomputes each event's canonical bytes from its stored columns, so a change to any
column is caught, and keeps only the previous chain hash: memory stays bounded however long the log.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from auditlog.domain.canonical import (
    LEAF_PREFIX,
    ZERO_HASH,
    canonical_bytes_from_text,
    format_timestamp,
)
from auditlog.domain.chain import record_leaf_hash
from auditlog.domain.event import EventRecord
from auditlog.domain.schema import FIELDS, EventRow, Kind, optional, values_by_kind

# A stored event as the verifier reads it (schema.EventRow, read by name): the id and timestamps in
# their canonical text (str(uuid), format_timestamp), so the storage can hand them over as PostgreSQL
# formats them and no Python object is built for them; details as a dict, hashes as bytes.
StoredEvent = Any
_sha256 = hashlib.sha256


class BreakKind(StrEnum):
    """What kind of break verification found first."""

    LEAF_HASH = "leaf_hash"
    CHAIN_HASH = "chain_hash"
    LINK = "link"
    GAP = "gap"
    HEAD = "head"
    CHECKPOINT = "checkpoint"


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


_stored_values = values_by_kind(
    "_stored_values", FIELDS, {Kind.UUID: str, Kind.TIMESTAMP: optional(format_timestamp)}
)


def stored_event(record: EventRecord) -> StoredEvent:
    """The record in the form the verifier reads."""
    return EventRow._make(_stored_values(record))


def stored_leaf_hash(event: StoredEvent) -> bytes:
    """The leaf hash recomputed from the stored event's columns (record_leaf_hash of the record)."""
    return _sha256(LEAF_PREFIX + canonical_bytes_from_text(event)).digest()


def verify_stored(
    events: Iterable[StoredEvent],
    *,
    start_sequence: int,
    prev_chain_hash: bytes,
    end_sequence: int | None,
    head: LogHead | None,
) -> VerificationResult:
    """Checks stored events (ascending sequence, starting at start_sequence) up to end_sequence.

    prev_chain_hash is the trusted chain hash before start_sequence (ZERO_HASH for 0). With head
    given, the events must end exactly at the head's sequence with its chain hash; events
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

    for event in events:
        sequence = event.sequence
        if end_sequence is not None and sequence > end_sequence and head is None:
            break
        if head is not None and sequence > head.sequence:
            return broken(
                sequence,
                BreakKind.HEAD,
                f"event {sequence} lies beyond the recorded head {head.sequence}",
            )
        if sequence != expected:
            if sequence > expected:
                return broken(
                    expected, BreakKind.GAP, f"event {expected} is missing (next found: {sequence})"
                )
            return broken(sequence, BreakKind.GAP, f"event {sequence} appears more than once")
        if event.prev_hash != prev:
            return broken(
                sequence,
                BreakKind.LINK,
                f"event {sequence}'s prev_hash does not match event {sequence - 1}'s chain hash",
            )
        # leaf_hash and chain_hash spelled out: the loop runs once per stored event.
        leaf = _sha256(LEAF_PREFIX + canonical_bytes_from_text(event)).digest()
        checked += 1
        last_seen = sequence
        if leaf != event.leaf_hash:
            return broken(
                sequence,
                BreakKind.LEAF_HASH,
                f"event {sequence}'s contents do not match its leaf hash",
            )
        if _sha256(prev + leaf).digest() != event.chain_hash:
            return broken(
                sequence,
                BreakKind.CHAIN_HASH,
                f"event {sequence}'s chain hash is not SHA-256(prev_hash || leaf hash)",
            )
        prev = event.chain_hash
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

    counted = f"{checked} event{'' if checked == 1 else 's'} checked"
    if head is not None and start_sequence == 0:
        message = f"the whole log is intact: {counted}"
    else:
        # A range says which events it vouches for: nothing before start_sequence was read.
        through = " (the head)" if head is not None else ""
        message = f"events {start_sequence} to {last_seen}{through} are intact: {counted}"
    return VerificationResult(
        valid=True,
        events_checked=checked,
        start_sequence=start_sequence if checked else None,
        end_sequence=last_seen,
        message=message,
    )


__all__ = [
    "ZERO_HASH",
    "BreakKind",
    "LogHead",
    "StoredEvent",
    "VerificationResult",
    "record_leaf_hash",
    "stored_event",
    "stored_leaf_hash",
    "verify_stored",
]
