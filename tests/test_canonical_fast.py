"""The fast canonical serialiser writes exactly what rfc8785 writes, for any input (hypothesis).

canonical_bytes takes a fast path for the shapes events have; these properties hold it to the
reference, rfc8785.dumps of the same document, byte for byte, and to the same errors.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from auditlog.domain.canonical import canonical_bytes, canonical_document, format_timestamp
from auditlog.domain.jcs import jcs_text

# Any code point, lone surrogates and the characters JSON escapes included.
CHARS = st.one_of(
    st.characters(),
    st.characters(categories=["Cs"]),
    st.sampled_from('"\\/\x00\x08\x09\x0a\x0c\x0d\x1f\x7f\u2028\u2029\ufeff€😀'),
)
TEXT = st.text(CHARS, max_size=12)
NUMBERS = st.one_of(
    st.integers(),
    st.integers(min_value=-(2**53) - 2, max_value=2**53 + 2),
    st.floats(),
    st.floats(allow_nan=False, allow_infinity=False).map(float.__round__).map(float),
    st.sampled_from([0.0, -0.0, 1e21, 1e20, 2.0**53, -(2.0**53), 1e-7, 5e-324, 1.7976931348623157e308]),
)
JSON: st.SearchStrategy[Any] = st.recursive(
    st.one_of(st.none(), st.booleans(), NUMBERS, TEXT),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(TEXT, children, max_size=4)),
    max_leaves=12,
)
ZONES = st.builds(timezone, st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23)))
TIMES = st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31), timezones=ZONES)
EVENTS = st.fixed_dictionaries(
    {
        "id": st.uuids(),
        "sequence": st.one_of(st.integers(min_value=0, max_value=2**40), st.integers()),
        "event_type": TEXT,
        "user_id": TEXT,
        "action": TEXT,
        "resource_type": TEXT,
        "resource_id": TEXT,
        "details": st.dictionaries(TEXT, JSON, max_size=6),
        "risk_level": TEXT,
        "ip_address": TEXT,
        "user_agent": TEXT,
        "session_id": TEXT,
        "request_id": TEXT,
        "occurred_at": st.one_of(st.none(), TIMES),
        "recorded_at": TIMES,
    }
)


def reference(fields: dict[str, Any]) -> bytes | type[Exception]:
    try:
        return bytes(rfc8785.dumps(canonical_document(**fields)))
    except Exception as err:
        return type(err)


def fast(fields: dict[str, Any]) -> bytes | type[Exception]:
    try:
        return canonical_bytes(**fields)
    except Exception as err:
        return type(err)


@settings(max_examples=1_500)
@given(EVENTS)
def test_canonical_bytes_equal_rfc8785_of_the_document_for_any_event(fields: dict[str, Any]) -> None:
    assert fast(fields) == reference(fields)


@settings(max_examples=1_500)
@given(st.dictionaries(TEXT, JSON, max_size=8))
def test_any_details_serialise_as_rfc8785_does(details: dict[str, Any]) -> None:
    fields = {
        "id": uuid.UUID(int=7),
        "sequence": 7,
        "event_type": "t",
        "user_id": "",
        "action": "a",
        "resource_type": "",
        "resource_id": "",
        "details": details,
        "risk_level": "",
        "ip_address": "",
        "user_agent": "",
        "session_id": "",
        "request_id": "",
        "occurred_at": None,
        "recorded_at": datetime(2024, 1, 1, tzinfo=UTC),
    }
    assert fast(fields) == reference(fields)


@given(TIMES)
def test_format_timestamp_is_utc_with_six_fractional_digits_and_z(value: datetime) -> None:
    v = value.astimezone(UTC)
    expected = f"{v.year:04d}-{v.month:02d}-{v.day:02d}T{v.hour:02d}:{v.minute:02d}:{v.second:02d}.{v.microsecond:06d}Z"
    assert format_timestamp(value) == expected


@settings(max_examples=1_000)
@given(JSON)
def test_jcs_text_equals_rfc8785_for_any_json_value(value: Any) -> None:
    try:
        expected: bytes | type[Exception] = bytes(rfc8785.dumps(value))
    except Exception as err:
        expected = type(err)
    try:
        text: bytes | type[Exception] = jcs_text(value).encode("utf-8")
    except Exception as err:
        text = type(err)
    assert text == expected
