"""The verifier's canonical bytes, from the stored text of the id and timestamps, are canonical_bytes
of the same event, byte for byte and error for error (hypothesis), and its JSON reading of details
is json.loads(..., parse_int=float).
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from auditlog.domain.canonical import canonical_bytes_from_text, format_timestamp
from auditlog.domain.chain import build_record, record_leaf_hash
from auditlog.domain.event import NewEvent
from auditlog.domain.jcs import json_loads
from auditlog.domain.schema import NAMES, EventRow
from auditlog.domain.verification import stored_event, stored_leaf_hash
from tests.fix_canonical import EVENTS, JSON, TIMES, fast, new_events


def from_text(fields: dict[str, Any]) -> bytes | type[Exception]:
    occurred_at = fields["occurred_at"]
    stored = {
        **fields,
        "id": str(fields["id"]),
        "occurred_at": None if occurred_at is None else format_timestamp(occurred_at),
        "recorded_at": format_timestamp(fields["recorded_at"]),
        "canonical_version": 2 if "recorded_by" in fields else 1,
    }
    try:
        # The hashes are not hashed: any bytes fill the row.
        return canonical_bytes_from_text(EventRow(**{name: stored.get(name, b"") for name in NAMES}))
    except Exception as err:
        return type(err)


@settings(max_examples=1_500)
@given(EVENTS)
def test_canonical_bytes_from_text_equal_canonical_bytes_for_any_event(fields: dict[str, Any]) -> None:
    assert from_text(fields) == fast(fields)


@settings(max_examples=300)
@given(
    new_events(),
    st.integers(min_value=0, max_value=2**40),
    TIMES,
    st.uuids(),
)
def test_stored_leaf_hash_is_the_record_leaf_hash(
    event: NewEvent, sequence: int, recorded_at: Any, event_id: Any
) -> None:
    try:
        record = build_record(
            event, sequence=sequence, recorded_at=recorded_at, prev=bytes(32), event_id=event_id
        )
    except Exception:
        return  # a value the canonical form refuses: no record to verify
    assert stored_leaf_hash(stored_event(record)) == record_leaf_hash(record) == record.leaf_hash


def reference_loads(text: str) -> Any:
    try:
        return ("ok", json.loads(text, parse_int=float))
    except ValueError as err:
        return ("error", str(err))


def loads(text: str) -> Any:
    try:
        return ("ok", json_loads(text))
    except ValueError as err:
        return ("error", str(err))


SPACING = st.sampled_from(["", " ", "\n", "\t "])


@settings(max_examples=1_000)
@given(JSON, SPACING, SPACING, st.sampled_from(["", "x", "}", "1", " 1"]))
def test_json_loads_is_json_loads_with_float_integers(value: Any, before: str, after: str, junk: str) -> None:
    try:
        text = json.dumps(value)
    except ValueError:
        return
    for candidate in (text, before + text + after, text + junk, before + text + after + junk):
        assert repr(loads(candidate)) == repr(reference_loads(candidate))


def test_json_loads_reads_a_long_integer_as_the_double_it_prints() -> None:
    assert json_loads('{"n": ' + "1" + "0" * 300 + "}") == {"n": 1e300}
    assert json_loads(b'{"a": 1}') == {"a": 1.0}
