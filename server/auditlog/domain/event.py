"""Event values: what a client asks to record, and what the log holds."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, TypeVar

from auditlog.domain.schema import CLIENT_NAMES, NAMES

RISK_LEVELS = ("low", "medium", "high", "critical")
HIGH_RISK_LEVELS = ("high", "critical")


@dataclass(frozen=True)
class NewEvent:
    """A validated event as a client supplied it, before the log assigns its position: the client
    fields of auditlog.domain.schema (spelled here for type checkers; checked at import)."""

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
    """One recorded event: every field of auditlog.domain.schema, in its order (hashes are raw bytes)."""

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
    recorded_by: str
    leaf_hash: bytes
    prev_hash: bytes
    chain_hash: bytes
    canonical_version: int
    # As NewEvent.details_json: jcs_text(details) when known (records built by the sequencer), None
    # otherwise (records read back from the database). Not part of equality.
    details_json: str | None = field(default=None, compare=False, repr=False)


def _check_against_schema() -> None:
    """The typed classes (for mypy) must hold exactly the schema's fields, the record in column order."""
    record = tuple(f.name for f in fields(EventRecord) if f.name != "details_json")
    event = {f.name for f in fields(NewEvent) if f.name != "details_json"}
    if record != NAMES or event != set(CLIENT_NAMES):
        raise ImportError("NewEvent and EventRecord must hold the fields of auditlog.domain.schema")


_check_against_schema()

_Value = TypeVar("_Value", NewEvent, EventRecord)
_new_object = object.__new__
_set_attribute = object.__setattr__


def assemble(cls: type[_Value], values: dict[str, Any]) -> _Value:
    """cls(**values), values naming every field, made without the dataclass __init__, which assigns
    the fields of a frozen instance one by one through object.__setattr__, twice per appended
    event (its event and its record). values becomes the instance's
    attribute dict, so it must be a fresh dict the caller keeps no reference to.
    tests/unit/test_prepared_events.py holds the results to the __init__ ones, field for field."""
    instance = _new_object(cls)
    _set_attribute(instance, "__dict__", values)
    return instance


class EventId(uuid.UUID):
    """The version-4 UUID of a new event, keeping its text: the text is written three times per
    event (canonical bytes, COPY line, answer), and uuid.UUID formats it afresh each time. Equal to,
    hashed like and stored like the uuid.UUID of the same value; pickled as one."""

    __slots__ = ("_text",)
    _text: str

    def __str__(self) -> str:
        return self._text

    def __reduce__(self) -> tuple[type[uuid.UUID], tuple[str]]:
        return uuid.UUID, (self._text,)


# The version (4) and variant (RFC 4122) bits of a version-4 UUID, as uuid.UUID(version=4) sets them.
_V4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_V4_SET = (0x4000 << 64) | (0x8000 << 48)
# uuid.UUID's is_safe for a UUID not made by the platform's generator; read once, since reading an
# enum member goes through a Python-level descriptor.
_UNKNOWN_SAFETY = uuid.SafeUUID.unknown


def random_uuids(count: int) -> Iterator[EventId]:
    """count version-4 UUIDs from one read of the system's random source (uuid4 reads it per UUID),
    made without uuid.UUID's argument checks, which a random 128-bit value cannot fail."""
    raw = os.urandom(16 * count)
    for offset in range(0, len(raw), 16):
        value = (int.from_bytes(raw[offset : offset + 16]) & _V4_CLEAR) | _V4_SET
        text = f"{value:032x}"
        event_id = _new_object(EventId)  # uuid.UUID refuses plain assignment
        _set_attribute(event_id, "int", value)
        _set_attribute(event_id, "is_safe", _UNKNOWN_SAFETY)
        _set_attribute(event_id, "_text", f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}")
        yield event_id
