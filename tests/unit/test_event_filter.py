"""EventFilter holds the set exact-match values by field name (schema.FILTER_NAMES): the same
filters compare equal, page tokens keep their fingerprints, and export jobs store the same JSON."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from auditlog.domain.filters import FILTER_FIELDS, EventFilter
from auditlog.export.jobs import filter_from_json, filter_to_json

START = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
END = datetime(2024, 2, 3, 4, 5, 6, 789, tzinfo=UTC)
EVERY_TEXT = {
    "ip_address": "10.0.0.1",
    "risk_level": "high",
    "resource_id": "d-1",
    "resource_type": "doc",
    "action": "update",
    "user_id": "alice",
    "event_type": "doc.edit",
}


def test_unset_values_are_left_out_and_the_order_given_does_not_matter() -> None:
    a = EventFilter.of({"user_id": "bob", "action": "", "event_type": "login"})
    b = EventFilter.of({"event_type": "login", "user_id": "bob"})
    assert a == b and hash(a) == hash(b)
    assert a.texts == (("event_type", "login"), ("user_id", "bob"))
    assert EventFilter.of({"user_id": ""}) == EventFilter()


def test_a_field_that_is_no_exact_match_filter_is_refused() -> None:
    with pytest.raises(ValueError, match="details"):
        EventFilter.of({"details": "x"})


def test_values_name_every_filter_field_in_order() -> None:
    values = EventFilter.of({"user_id": "bob"}, START).values()
    assert tuple(values) == FILTER_FIELDS
    assert values["user_id"] == "bob" and values["action"] == "" and values["start_date"] == START
    assert values["end_date"] is None


def test_fingerprints_are_those_page_tokens_already_carry() -> None:
    # Digests of the earlier EventFilter (one attribute a field) for the same filters.
    assert EventFilter().fingerprint() == "fd7055f0c51c7def"
    assert EventFilter.of({"user_id": "bob"}).fingerprint() == "3b0ac0ba21aacdab"
    assert EventFilter.of(EVERY_TEXT, START, END).fingerprint() == "d9ecee8bf79ce486"


def test_export_jobs_store_the_set_fields_and_read_them_back() -> None:
    event_filter = EventFilter.of(EVERY_TEXT, START, END)
    stored = filter_to_json(event_filter)
    assert list(stored) == list(FILTER_FIELDS)
    assert stored["start_date"] == "2024-01-02T03:04:05.000000Z"
    assert filter_from_json(stored) == event_filter
    assert filter_to_json(EventFilter.of({"risk_level": "low"})) == {"risk_level": "low"}
    assert filter_from_json({}) == EventFilter()
