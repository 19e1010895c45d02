"""Canonical bytes and hashes against fixed vectors (docs/integrity.md, to the byte).

The expected values are written out here, so any change of the formula fails these tests.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from auditlog.domain.canonical import ZERO_HASH, canonical_bytes, chain_hash, format_timestamp, leaf_hash

EVENT_0: dict[str, Any] = {
    "id": uuid.UUID("123e4567-e89b-12d3-a456-426614174000"),
    "sequence": 0,
    "event_type": "user.login",
    "user_id": "user123",
    "action": "successful_login",
    "resource_type": "authentication",
    "resource_id": "session_456",
    "details": {"login_method": "password", "device_type": "web"},
    "risk_level": "low",
    "ip_address": "192.168.1.100",
    "user_agent": "Mozilla/5.0...",
    "session_id": "",
    "request_id": "",
    "occurred_at": None,
    "recorded_at": datetime(2024, 1, 1, tzinfo=UTC),
}
CANONICAL_0 = (
    b'{"action":"successful_login","details":{"device_type":"web","login_method":"password"},'
    b'"event_type":"user.login","id":"123e4567-e89b-12d3-a456-426614174000","ip_address":"192.168.1.100",'
    b'"occurred_at":null,"recorded_at":"2024-01-01T00:00:00.000000Z","request_id":"","resource_id":"session_456",'
    b'"resource_type":"authentication","risk_level":"low","sequence":0,"session_id":"","user_agent":"Mozilla/5.0...",'
    b'"user_id":"user123"}'
)
LEAF_0 = "5f702b4ae6afb23e8a5aedfcc6a68b21a432abdb92dafc82fde425ab587788a8"
CHAIN_0 = "687e3a954f8bf6d2ab9bdf4f113b2aeb34c838a679179592eea786f38bc798d9"

EVENT_1: dict[str, Any] = {
    "id": uuid.UUID("00000000-0000-4000-8000-000000000001"),
    "sequence": 1,
    "event_type": "document.delete",
    "user_id": "ünïcødé",
    "action": "delete",
    "resource_type": "document",
    "resource_id": "doc-€",
    "details": {"z": [1.5, True, None, "x"], "a": {"b": 1e21, "c": -0.0}, "€": "😀"},
    "risk_level": "critical",
    "ip_address": "2001:db8::1",
    "user_agent": "",
    "session_id": "s1",
    "request_id": "req-1",
    "occurred_at": datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    "recorded_at": datetime(2024, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
}
# Keys sorted by UTF-16 code units ("€" after "z"), numbers in ECMAScript form (1e+21, -0 -> 0),
# non-ASCII as raw UTF-8, timestamps with six fractional digits and Z.
CANONICAL_1 = (
    b'{"action":"delete","details":{"a":{"b":1e+21,"c":0},"z":[1.5,true,null,"x"],"\xe2\x82\xac":"\xf0\x9f\x98\x80"},'
    b'"event_type":"document.delete","id":"00000000-0000-4000-8000-000000000001","ip_address":"2001:db8::1",'
    b'"occurred_at":"1999-12-31T23:59:59.999999Z","recorded_at":"2024-01-01T00:00:00.000001Z","request_id":"req-1",'
    b'"resource_id":"doc-\xe2\x82\xac","resource_type":"document","risk_level":"critical","sequence":1,'
    b'"session_id":"s1","user_agent":"","user_id":"\xc3\xbcn\xc3\xafc\xc3\xb8d\xc3\xa9"}'
)
LEAF_1 = "5aa07fc8dabd4bca3ec17c5d9a9411722a6318776227c10a2cb0b9f1dff786fa"
CHAIN_1 = "b5599504ca17b49b389713e9b9d364d19b586998c91a0c10473dcdd8359f4435"

# Canonical form version 2: version 1's members plus recorded_by (sorted between recorded_at and
# request_id); no version key in the object.
EVENT_2: dict[str, Any] = {
    **EVENT_0,
    "id": uuid.UUID("00000000-0000-4000-8000-000000000002"),
    "sequence": 2,
    "request_id": "req-2",
    "recorded_at": datetime(2024, 1, 1, 0, 0, 1, tzinfo=UTC),
    "recorded_by": "key:ci-writer",
}
CANONICAL_2 = (
    b'{"action":"successful_login","details":{"device_type":"web","login_method":"password"},'
    b'"event_type":"user.login","id":"00000000-0000-4000-8000-000000000002","ip_address":"192.168.1.100",'
    b'"occurred_at":null,"recorded_at":"2024-01-01T00:00:01.000000Z","recorded_by":"key:ci-writer",'
    b'"request_id":"req-2","resource_id":"session_456","resource_type":"authentication","risk_level":"low",'
    b'"sequence":2,"session_id":"","user_agent":"Mozilla/5.0...","user_id":"user123"}'
)
LEAF_2 = "577afdead3fde2fb5d722772d77f563d2840554f5dc203413421d5c9292e9469"
CHAIN_2 = "3d1d86f5e1c1989ddd587f4e504697bb97e22407f0cd94ace7d62e33225e9d2b"


def test_canonical_bytes_of_published_example_event() -> None:
    assert canonical_bytes(**EVENT_0) == CANONICAL_0


def test_canonical_bytes_sort_keys_by_utf16_and_format_numbers_as_ecmascript() -> None:
    assert canonical_bytes(**EVENT_1) == CANONICAL_1


def test_leaf_hash_is_sha256_of_zero_byte_and_canonical_bytes() -> None:
    assert leaf_hash(CANONICAL_0).hex() == LEAF_0
    assert hashlib.sha256(b"\x00" + CANONICAL_0).hexdigest() == LEAF_0
    assert leaf_hash(CANONICAL_1).hex() == LEAF_1


def test_chain_hash_links_from_32_zero_bytes() -> None:
    assert ZERO_HASH == b"\x00" * 32
    first = chain_hash(ZERO_HASH, bytes.fromhex(LEAF_0))
    assert first.hex() == CHAIN_0
    assert hashlib.sha256(b"\x00" * 32 + bytes.fromhex(LEAF_0)).hexdigest() == CHAIN_0
    assert chain_hash(first, bytes.fromhex(LEAF_1)).hex() == CHAIN_1


def test_any_field_change_changes_the_leaf_hash() -> None:
    base = leaf_hash(canonical_bytes(**EVENT_0))
    for name, value in [
        ("user_id", "user124"),
        ("sequence", 1),
        ("details", {}),
        ("occurred_at", EVENT_1["recorded_at"]),
    ]:
        assert leaf_hash(canonical_bytes(**{**EVENT_0, name: value})) != base, name


def test_version_2_vector_adds_recorded_by_and_chains_after_vector_1() -> None:
    canonical = canonical_bytes(**EVENT_2)
    assert canonical == CANONICAL_2
    assert leaf_hash(canonical).hex() == LEAF_2 == hashlib.sha256(b"\x00" + CANONICAL_2).hexdigest()
    assert chain_hash(bytes.fromhex(CHAIN_1), bytes.fromhex(LEAF_2)).hex() == CHAIN_2


def test_version_2_with_empty_recorded_by_differs_from_version_1() -> None:
    """What a row relabelled 2 -> 1 is checked against: never the leaf hash it was written with."""
    as_v1 = {k: v for k, v in EVENT_2.items() if k != "recorded_by"}
    assert leaf_hash(canonical_bytes(**as_v1)) != leaf_hash(canonical_bytes(**{**EVENT_2, "recorded_by": ""}))


def test_timestamps_render_in_utc_with_six_digits() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert format_timestamp(datetime(2024, 1, 1, 2, 0, tzinfo=plus_two)) == "2024-01-01T00:00:00.000000Z"
    assert format_timestamp(datetime(5, 3, 4, 5, 6, 7, 89, tzinfo=UTC)) == "0005-03-04T05:06:07.000089Z"
    with pytest.raises(ValueError, match="timezone-aware"):
        format_timestamp(datetime(2024, 1, 1))


def test_chain_hash_refuses_wrong_lengths() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        chain_hash(b"\x00" * 31, bytes(32))


def test_docs_integrity_states_what_the_code_computes_for_each_vector() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "integrity.md").read_text(encoding="utf-8")
    previous = ZERO_HASH
    for event in (EVENT_0, EVENT_1, EVENT_2):
        canonical = canonical_bytes(**event)
        previous = chain_hash(previous, leaf_hash(canonical))
        assert f"\n{canonical.decode()}\n" in text
        assert f"leaf hash `{leaf_hash(canonical).hex()}`" in text
        assert f"`{previous.hex()}`" in text
