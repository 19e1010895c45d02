"""Canonical bytes and hashes of an event, exactly as DESIGN.md's integrity model defines them.

canonical bytes = RFC 8785 (JCS) of a JSON object holding every event field but prev_hash and
chain_hash; leaf hash = SHA-256(0x00 || canonical bytes) (RFC 6962 leaf); chain hash of event n =
SHA-256(chain hash of n-1 || leaf hash of n), with 32 zero bytes before event 0.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any

import rfc8785

ZERO_HASH = bytes(32)
LEAF_PREFIX = b"\x00"


def format_timestamp(value: datetime) -> str:
    """RFC 3339 UTC with exactly six fractional digits and 'Z': 2024-01-01T00:00:00.000000Z."""
    if value.tzinfo is None:
        raise ValueError("timestamps in the log are timezone-aware")
    v = value.astimezone(UTC)
    # Formatted by hand: strftime's %Y does not zero-pad years below 1000 on every platform.
    return (
        f"{v.year:04d}-{v.month:02d}-{v.day:02d}T{v.hour:02d}:{v.minute:02d}:{v.second:02d}"
        f".{v.microsecond:06d}Z"
    )


def canonical_bytes(
    *,
    id: uuid.UUID,
    sequence: int,
    event_type: str,
    user_id: str,
    action: str,
    resource_type: str,
    resource_id: str,
    details: dict[str, Any],
    risk_level: str,
    ip_address: str,
    user_agent: str,
    session_id: str,
    request_id: str,
    occurred_at: datetime | None,
    recorded_at: datetime,
) -> bytes:
    """The JCS serialisation of the event's hashed fields."""
    document: dict[str, Any] = {
        "id": str(id),
        "sequence": sequence,
        "event_type": event_type,
        "user_id": user_id,
        "action": action,
        "resource_type": resource_type,
        "resource_id": resource_id,
        "details": details,
        "risk_level": risk_level,
        "ip_address": ip_address,
        "user_agent": user_agent,
        "session_id": session_id,
        "request_id": request_id,
        "occurred_at": None if occurred_at is None else format_timestamp(occurred_at),
        "recorded_at": format_timestamp(recorded_at),
    }
    return bytes(rfc8785.dumps(document))


def leaf_hash(canonical: bytes) -> bytes:
    """SHA-256(0x00 || canonical bytes)."""
    return hashlib.sha256(LEAF_PREFIX + canonical).digest()


def chain_hash(prev_chain_hash: bytes, leaf: bytes) -> bytes:
    """SHA-256(previous chain hash || leaf hash)."""
    if len(prev_chain_hash) != 32 or len(leaf) != 32:
        raise ValueError("chain and leaf hashes are 32 bytes")
    return hashlib.sha256(prev_chain_hash + leaf).digest()
