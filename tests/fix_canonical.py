"""Hypothesis strategies for events and JSON, and the two canonical serialisers they compare
(plugin: tests/conftest.py)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import rfc8785
from hypothesis import strategies as st

from auditlog.domain.canonical import canonical_bytes, canonical_document

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
# The members of canonical form version 1; EVENTS adds version 2's recorded_by to about half.
V1_EVENTS = st.fixed_dictionaries(
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
EVENTS = st.one_of(V1_EVENTS, st.builds(lambda event, by: {**event, "recorded_by": by}, V1_EVENTS, TEXT))


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


# Text and JSON the API accepts (no lone surrogates, no NUL), for round trips through the service.
text = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=20)
line = st.text(st.characters(blacklist_categories=["Cs", "Cc"]), min_size=1, max_size=30).filter(str.strip)
json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False, width=64) | text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
    max_leaves=20,
)
details_objects = st.dictionaries(text, json_values, max_size=6)


def new_events(**extra: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Client events (NewEvent) with any text and details, plus extra fields' strategies."""
    from auditlog.domain.event import NewEvent

    return st.builds(
        NewEvent,
        event_type=st.text(),
        action=st.text(),
        user_id=st.text(),
        details=st.dictionaries(st.text(), JSON, max_size=4),
        occurred_at=st.one_of(st.none(), TIMES),
        **extra,
    )
