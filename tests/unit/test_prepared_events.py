"""Events prepared before sequencing (canonical segments made in the caller's thread, details
serialised once by validation) give exactly the canonical bytes and records of the direct path, for
any event (hypothesis)."""

from __future__ import annotations

import pickle
import uuid
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from auditlog.domain.canonical import canonical_bytes_from_segments, canonical_segments, format_timestamp
from auditlog.domain.chain import RecordBuilder, build_record, prepare_event
from auditlog.domain.event import EventRecord, NewEvent, random_uuids
from auditlog.domain.jcs import jcs_text
from auditlog.domain.validation import validate_new_event
from tests.fix_canonical import EVENTS, JSON, TIMES, fast, new_events

SAFE = 2**53 - 1


def from_segments(fields: dict[str, Any]) -> bytes | type[Exception] | None:
    """The current form's bytes by segments (fields must hold recorded_by)."""
    given = ("id", "sequence", "recorded_at", "recorded_by")
    position_free = {k: v for k, v in fields.items() if k not in given}
    segments = canonical_segments(SimpleNamespace(details_json=None, **position_free), fields["recorded_by"])
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
    fields = {"recorded_by": "", **fields}  # new events are always of the current form
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
    full = {
        **fields,
        "id": uuid.uuid4(),
        "sequence": 7,
        "recorded_at": datetime.now(UTC),
        "recorded_by": "key:w\t",
    }
    assert from_segments(full) == fast(full)


@settings(max_examples=300)
@given(
    new_events(request_id=st.text()),
    st.uuids(),
    st.integers(min_value=0, max_value=SAFE),
    TIMES,
    st.binary(min_size=32, max_size=32),
    st.text(),
)
def test_record_builder_builds_what_build_record_builds(
    event: NewEvent, event_id: uuid.UUID, sequence: int, recorded_at: datetime, prev: bytes, by: str
) -> None:
    try:
        expected = build_record(
            event, sequence=sequence, recorded_at=recorded_at, prev=prev, event_id=event_id, recorded_by=by
        )
    except Exception as err:
        with pytest.raises(type(err)):
            RecordBuilder(recorded_at).build(prepare_event(event, event_id, by), sequence=sequence, prev=prev)
        return
    built = RecordBuilder(recorded_at).build(prepare_event(event, event_id, by), sequence=sequence, prev=prev)
    assert built == expected and built.recorded_by == by and built.canonical_version == 2


@settings(max_examples=300)
@given(st.dictionaries(st.text(), JSON, max_size=4), st.uuids(), TIMES)
def test_details_text_carried_from_validation_gives_the_same_record(
    details: dict[str, Any], event_id: uuid.UUID, recorded_at: datetime
) -> None:
    try:
        text = jcs_text(details)
    except Exception:  # rfc8785 refuses these details: validation never carries a text for them
        text = None
    assume(text is not None)
    plain = NewEvent(event_type="t", action="a", details=details)
    carried = NewEvent(event_type="t", action="a", details=details, details_json=text)
    expected = build_record(plain, sequence=3, recorded_at=recorded_at, prev=bytes(32), event_id=event_id)
    built = RecordBuilder(recorded_at).build(prepare_event(carried, event_id), sequence=3, prev=bytes(32))
    assert built == expected
    assert built.details_json == text


def test_validation_and_the_record_builder_make_what_init_makes() -> None:
    """Both build their values without the dataclass __init__ (domain.event.assemble)."""
    fields = {
        "event_type": "user.login",
        "action": "login",
        "user_id": "u-1",
        "resource_type": "session",
        "resource_id": "s-1",
        "risk_level": "low",
        "ip_address": "::ffff:10.0.0.1",
        "user_agent": "ua",
        "session_id": "sess",
        "request_id": "req-1",
        "occurred_at": "2024-01-01T00:00:00Z",
    }
    event = validate_new_event(fields, {"b": 2.0, "a": ["ü", None]})
    expected_event = NewEvent(
        event_type="user.login",
        action="login",
        user_id="u-1",
        resource_type="session",
        resource_id="s-1",
        details={"b": 2.0, "a": ["ü", None]},
        risk_level="low",
        ip_address="::ffff:a00:1",
        user_agent="ua",
        session_id="sess",
        request_id="req-1",
        occurred_at=datetime(2024, 1, 1, tzinfo=UTC),
        details_json='{"a":["ü",null],"b":2}',
    )
    assert vars(event) == vars(expected_event)
    record = RecordBuilder(datetime.now(UTC)).build(
        prepare_event(event, uuid.uuid4()), sequence=0, prev=bytes(32)
    )
    by_init = EventRecord(**{name: getattr(record, name) for name in EventRecord.__dataclass_fields__})
    assert vars(record) == vars(by_init)


def test_new_event_ids_are_version_4_uuids_that_behave_as_uuid_does() -> None:
    ids = list(random_uuids(2_000))
    assert len(set(ids)) == len(ids)
    for event_id in ids[:50]:
        plain = uuid.UUID(str(event_id))
        assert (event_id.version, event_id.variant) == (4, uuid.RFC_4122)
        assert str(event_id) == str(plain) == str(uuid.UUID(int=event_id.int))
        assert event_id == plain and hash(event_id) == hash(plain)
        assert event_id.hex == plain.hex and event_id.bytes == plain.bytes
        copied = pickle.loads(pickle.dumps(event_id))
        assert type(copied) is uuid.UUID and copied == plain
    # The version and variant bits are the only fixed ones: every other bit varies.
    varying = 0
    for event_id in ids:
        varying |= event_id.int ^ ids[0].int
    assert bin(varying).count("1") == 122
