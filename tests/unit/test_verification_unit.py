"""The pure verification fold, without a database: each kind of break on a built chain."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from auditlog.domain.canonical import ZERO_HASH, canonical_bytes, chain_hash, leaf_hash
from auditlog.domain.chain import build_record
from auditlog.domain.event import EventRecord, NewEvent
from auditlog.domain.schema import CLIENT_NAMES
from auditlog.domain.verification import (
    BreakKind,
    LogHead,
    VerificationResult,
    stored_event,
    verify_stored,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def chain(length: int) -> list[EventRecord]:
    records: list[EventRecord] = []
    prev = ZERO_HASH
    for i in range(length):
        record = build_record(
            NewEvent(event_type="t.e", action="a", details={"i": float(i)}),
            sequence=i,
            recorded_at=T0,
            prev=prev,
            event_id=uuid.UUID(int=i + 1),
        )
        records.append(record)
        prev = record.chain_hash
    return records


def head_of(records: list[EventRecord]) -> LogHead:
    return LogHead(records[-1].sequence, records[-1].chain_hash)


def verify_records(records: Iterable[EventRecord], **bounds: Any) -> VerificationResult:
    return verify_stored(map(stored_event, records), **bounds)


def verify_all(records: list[EventRecord], head: LogHead) -> VerificationResult:
    return verify_records(records, start_sequence=0, prev_chain_hash=ZERO_HASH, end_sequence=None, head=head)


def test_intact_chain_verifies() -> None:
    records = chain(5)
    result = verify_all(records, head_of(records))
    assert result.valid and result.events_checked == 5 and result.end_sequence == 4


def test_the_intact_message_counts_events_in_plain_english() -> None:
    one, five = chain(1), chain(5)
    assert verify_all(one, head_of(one)).message == "the whole log is intact: 1 event checked"
    assert verify_all(five, head_of(five)).message == "the whole log is intact: 5 events checked"


def test_empty_log_verifies_against_empty_head() -> None:
    assert verify_all([], LogHead(-1, ZERO_HASH)).valid


def test_each_break_kind_is_found_at_its_sequence() -> None:
    records = chain(5)
    head = head_of(records)
    changed = [*records[:2], dataclasses.replace(records[2], action="b"), *records[3:]]
    assert (verify_all(changed, head).first_bad_sequence, verify_all(changed, head).break_kind) == (
        2,
        BreakKind.LEAF_HASH,
    )
    rehashed = [*records[:3], dataclasses.replace(records[3], chain_hash=bytes(32)), records[4]]
    assert verify_all(rehashed, head).break_kind == BreakKind.CHAIN_HASH
    gap = [*records[:1], *records[2:]]
    assert (verify_all(gap, head).first_bad_sequence, verify_all(gap, head).break_kind) == (1, BreakKind.GAP)
    duplicate = [*records[:3], records[2], *records[3:]]
    assert (verify_all(duplicate, head).first_bad_sequence, verify_all(duplicate, head).break_kind) == (
        2,
        BreakKind.GAP,
    )
    relinked = [*records[:3], dataclasses.replace(records[3], prev_hash=records[1].chain_hash), records[4]]
    assert (verify_all(relinked, head).first_bad_sequence, verify_all(relinked, head).break_kind) == (
        3,
        BreakKind.LINK,
    )
    truncated = records[:4]
    assert (verify_all(truncated, head).first_bad_sequence, verify_all(truncated, head).break_kind) == (
        4,
        BreakKind.HEAD,
    )
    other_head = LogHead(4, bytes(32))
    assert (
        verify_all(records, other_head).first_bad_sequence,
        verify_all(records, other_head).break_kind,
    ) == (
        4,
        BreakKind.HEAD,
    )


def test_range_without_head_stops_at_its_end_and_reports_a_missing_tail() -> None:
    records = chain(6)
    result = verify_records(
        records[2:], start_sequence=2, prev_chain_hash=records[1].chain_hash, end_sequence=3, head=None
    )
    assert result.valid and result.events_checked == 2
    short = verify_records(
        records[2:3], start_sequence=2, prev_chain_hash=records[1].chain_hash, end_sequence=3, head=None
    )
    assert (short.valid, short.first_bad_sequence, short.break_kind) == (False, 3, BreakKind.GAP)


def test_verification_reads_lazily_and_stops_at_the_first_break() -> None:
    records = chain(4)
    consumed: list[int] = []

    def stream() -> Iterator[EventRecord]:
        for record in [records[0], dataclasses.replace(records[1], user_id="x"), records[2], records[3]]:
            consumed.append(record.sequence)
            yield record

    result = verify_records(
        stream(), start_sequence=0, prev_chain_hash=ZERO_HASH, end_sequence=None, head=None
    )
    assert result.first_bad_sequence == 1
    assert consumed == [0, 1]


def _as_version_1(record: EventRecord, prev: bytes) -> EventRecord:
    """record as a row written before recorded_by existed: hashed by canonical form version 1."""
    values = {name: getattr(record, name) for name in CLIENT_NAMES}
    leaf = leaf_hash(
        canonical_bytes(**values, id=record.id, sequence=record.sequence, recorded_at=record.recorded_at)
    )
    return dataclasses.replace(
        record,
        recorded_by="",
        canonical_version=1,
        leaf_hash=leaf,
        prev_hash=prev,
        chain_hash=chain_hash(prev, leaf),
    )


def mixed_chain() -> list[EventRecord]:
    """Three version 1 rows, then two version 2 rows written by a principal."""
    records: list[EventRecord] = []
    prev = ZERO_HASH
    for i in range(5):
        record = build_record(
            NewEvent(event_type="t.e", action="a"),
            sequence=i,
            recorded_at=T0,
            prev=prev,
            event_id=uuid.UUID(int=i + 1),
            recorded_by="" if i < 3 else "key:writer",
        )
        if i < 3:
            record = _as_version_1(record, prev)
        records.append(record)
        prev = record.chain_hash
    return records


def test_version_1_rows_and_version_2_rows_verify_together() -> None:
    records = mixed_chain()
    assert [r.canonical_version for r in records] == [1, 1, 1, 2, 2]
    assert verify_all(records, head_of(records)).valid


def test_a_row_relabelled_to_the_other_version_is_a_leaf_hash_break() -> None:
    for sequence, version in ((3, 1), (1, 2)):
        records = mixed_chain()
        records[sequence] = dataclasses.replace(records[sequence], canonical_version=version)
        result = verify_all(records, head_of(records))
        assert (result.first_bad_sequence, result.break_kind) == (sequence, BreakKind.LEAF_HASH)


def test_a_changed_recorded_by_is_a_leaf_hash_break() -> None:
    records = mixed_chain()
    records[4] = dataclasses.replace(records[4], recorded_by="key:someone-else")
    result = verify_all(records, head_of(records))
    assert (result.first_bad_sequence, result.break_kind) == (4, BreakKind.LEAF_HASH)
