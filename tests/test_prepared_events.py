"""Events prepared before sequencing (canonical segments made in the caller's thread) give exactly
the canonical bytes and records of the direct path, for any event (hypothesis)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditlog.domain.canonical import canonical_bytes_from_segments, canonical_segments, format_timestamp
from auditlog.domain.chain import RecordBuilder, build_record, prepare_event
from auditlog.domain.event import NewEvent
from tests.test_canonical_fast import EVENTS, JSON, TIMES, fast

SAFE = 2**53 - 1


def from_segments(fields: dict[str, Any]) -> bytes | type[Exception] | None:
    position_free = {k: v for k, v in fields.items() if k not in ("id", "sequence", "recorded_at")}
    segments = canonical_segments(**position_free)
    if segments is None:
        return None
    try:
        return canonical_bytes_from_segments(
            segments, fields["id"], format_timestamp(fields["recorded_at"]), fields["sequence"]
        )
    except Exception as err:
        return type(err)


@settings(max_examples=1_500)
@given(EVENTS)
def test_segments_give_canonical_bytes_for_any_event(fields: dict[str, Any]) -> None:
    placed = from_segments(fields)
    expected = fast(fields)
    if -SAFE <= fields["sequence"] <= SAFE:
        # None: left to canonical_bytes, which the record builder then calls.
        assert placed is None or placed == expected
    else:
        # No JSON number holds it: both refuse.
        assert placed is None or (isinstance(placed, type) and isinstance(expected, type))


def test_segments_cover_ordinary_events() -> None:
    fields = {
        "event_type": "user.login",
        "user_id": "ü",
        "action": 'a\\b"c\n',
        "resource_type": "",
        "resource_id": "😀",
        "details": {"n": 1.5, "i": 2.0, "s": ["x", None, True], "o": {"k": -0.0}},
        "risk_level": "high",
        "ip_address": "::1",
        "user_agent": "",
        "session_id": "",
        "request_id": "r",
        "occurred_at": datetime(2024, 1, 1, tzinfo=UTC),
    }
    full = {**fields, "id": uuid.uuid4(), "sequence": 7, "recorded_at": datetime.now(UTC)}
    assert from_segments(full) == fast(full)


@settings(max_examples=300)
@given(
    st.builds(
        NewEvent,
        event_type=st.text(),
        action=st.text(),
        user_id=st.text(),
        details=st.dictionaries(st.text(), JSON, max_size=4),
        occurred_at=st.one_of(st.none(), TIMES),
        request_id=st.text(),
    ),
    st.uuids(),
    st.integers(min_value=0, max_value=SAFE),
    TIMES,
    st.binary(min_size=32, max_size=32),
)
def test_record_builder_builds_what_build_record_builds(
    event: NewEvent, event_id: uuid.UUID, sequence: int, recorded_at: datetime, prev: bytes
) -> None:
    try:
        expected = build_record(
            event, sequence=sequence, recorded_at=recorded_at, prev=prev, event_id=event_id
        )
    except Exception as err:
        with pytest.raises(type(err)):
            RecordBuilder(recorded_at).build(prepare_event(event, event_id), sequence=sequence, prev=prev)
        return
    built = RecordBuilder(recorded_at).build(prepare_event(event, event_id), sequence=sequence, prev=prev)
    assert built == expected
