"""Event values: what a client asks to record, and what the log holds."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

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
    # The RFC 8785 text of details when validation made it (None: made when needed). The log hashes
    # and stores exactly this text, so it must be jcs_text(details); it is carried so that details
    # are serialised once per event, not once for the size check, once for the hash and once for
    # PostgreSQL. Not part of equality.
    details_json: str | None = field(default=None, compare=False, repr=False)


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
    # As NewEvent.details_json: jcs_text(details) when known (records built by the sequencer), None
    # otherwise (records read back from the database). Not part of equality.
    details_json: str | None = field(default=None, compare=False, repr=False)


_Value = TypeVar("_Value", NewEvent, EventRecord)
_new_object = object.__new__
_set_attribute = object.__setattr__


def assemble(cls: type[_Value], values: dict[str, Any]) -> _Value:
    """cls(**values), values naming every field, made without the dataclass __init__, which assigns
    the fields of a frozen instance one by one through object.__setattr__: building one event and
    one record that way was a tenth of the Python cost of an append. values becomes the instance's
    attribute dict, so it must be a fresh dict the caller keeps no reference to.
    tests/test_prepared_events.py holds the results to the __init__ ones, field for field."""
    instance = _new_object(cls)
    _set_attribute(instance, "__dict__", values)
    return instance
