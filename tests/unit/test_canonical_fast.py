"""The fast canonical serialiser writes exactly what rfc8785 writes, for any input (hypothesis).

canonical_bytes takes a fast path for the shapes events have; these properties hold it to the
reference, rfc8785.dumps of the same document, byte for byte, and to the same errors.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from auditlog.domain.canonical import format_timestamp
from auditlog.domain.jcs import jcs_text
from tests.fix_canonical import EVENTS, JSON, TEXT, TIMES, fast, reference


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
