"""What one event becomes in an export: a table row (CSV, XLSX) or a JSON object (JSON).

The JSON object holds exactly the values the canonical form hashes (docs/integrity.md),
plus the hashes, so a reader can recompute leaf and chain hashes from the file alone.
"""

from __future__ import annotations

import json
from typing import Any

from auditlog.domain.canonical import format_timestamp
from auditlog.domain.event import EventRecord

# Column order of the tabular formats: position and time first, then the client's fields, then the
# hashes that tie each row to the chain.
TABLE_COLUMNS = (
    "sequence",
    "id",
    "recorded_at",
    "occurred_at",
    "event_type",
    "user_id",
    "action",
    "resource_type",
    "resource_id",
    "risk_level",
    "ip_address",
    "user_agent",
    "session_id",
    "request_id",
    "details",
    "leaf_hash",
    "prev_hash",
    "chain_hash",
)


def details_json(details: dict[str, Any]) -> str:
    """Compact JSON, non-ASCII kept as is (the files are UTF-8)."""
    return json.dumps(details, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def event_object(record: EventRecord) -> dict[str, Any]:
    """The JSON export's object for one event: every canonical field as hashed, plus the hashes."""
    return {
        "id": str(record.id),
        "sequence": record.sequence,
        "event_type": record.event_type,
        "user_id": record.user_id,
        "action": record.action,
        "resource_type": record.resource_type,
        "resource_id": record.resource_id,
        "details": record.details,
        "risk_level": record.risk_level,
        "ip_address": record.ip_address,
        "user_agent": record.user_agent,
        "session_id": record.session_id,
        "request_id": record.request_id,
        "occurred_at": None if record.occurred_at is None else format_timestamp(record.occurred_at),
        "recorded_at": format_timestamp(record.recorded_at),
        "leaf_hash": record.leaf_hash.hex(),
        "prev_hash": record.prev_hash.hex(),
        "chain_hash": record.chain_hash.hex(),
    }
