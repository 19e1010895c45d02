"""Event values: what a client asks to record, and what the log holds."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

RISK_LEVELS = ("low", "medium", "high", "critical")
HIGH_RISK_LEVELS = ("high", "critical")


@dataclass(frozen=True)
class NewEvent:
    """A validated event as a client supplied it, before the log assigns its position."""

    event_type: str
    action: str
    user_id: str = ""
    resource_type: str = ""
    resource_id: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    risk_level: str = ""
    ip_address: str = ""
    user_agent: str = ""
    session_id: str = ""
    request_id: str = ""
    occurred_at: datetime | None = None


@dataclass(frozen=True)
class EventRecord:
    """One recorded event: the client's fields plus the server-assigned ones (hashes are raw bytes)."""

    id: uuid.UUID
    sequence: int
    event_type: str
    user_id: str
    action: str
    resource_type: str
    resource_id: str
    details: dict[str, Any]
    risk_level: str
    ip_address: str
    user_agent: str
    session_id: str
    request_id: str
    occurred_at: datetime | None
    recorded_at: datetime
    leaf_hash: bytes
    prev_hash: bytes
    chain_hash: bytes
