"""Between protobuf messages and domain values."""

from __future__ import annotations

import functools
import math
from datetime import datetime
from typing import Any

from google.protobuf import json_format, struct_pb2, timestamp_pb2

from audit.v1 import audit_service_pb2, event_pb2
from auditlog.domain.event import EventRecord, NewEvent
from auditlog.domain.filters import EventFilter
from auditlog.domain.validation import validate_filter, validate_new_event

EVENT_INPUT_FIELDS = (
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
    "occurred_at",
)
FILTER_FIELDS = (
    "event_type",
    "user_id",
    "action",
    "resource_type",
    "resource_id",
    "risk_level",
    "ip_address",
    "start_date",
    "end_date",
)


def _numbers_as_doubles(value: Any) -> Any:
    """JSON numbers are doubles (RFC 8785 hashes them so); Struct holds them so, and this keeps ints so too."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        # + 0.0 turns -0.0 into 0.0: PostgreSQL's numeric has no negative zero, so a stored -0.0
        # would read back as 0.0 (the same in canonical JSON, but not in the API's answers).
        return float(value) + 0.0
    if isinstance(value, dict):
        return {k: _numbers_as_doubles(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers_as_doubles(v) for v in value]
    return value


class _NotPlainError(Exception):
    """A Struct value the direct conversion leaves to json_format (non-finite numbers)."""


def _plain_value(value: struct_pb2.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return value.string_value
    if kind == "number_value":
        number = value.number_value
        if not math.isfinite(number):
            raise _NotPlainError
        return number + 0.0  # -0.0 -> 0.0, as _numbers_as_doubles does
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        fields = value.struct_value.fields
        return {key: _plain_value(fields[key]) for key in fields}
    if kind == "list_value":
        return [_plain_value(item) for item in value.list_value.values]
    if kind == "null_value":
        return None
    raise _NotPlainError


def details_from_proto(details: struct_pb2.Struct) -> dict[str, Any]:
    """The Struct as a dict with every number a double: what json_format.MessageToDict followed by
    _numbers_as_doubles gives, read directly (json_format is several times slower)."""
    try:
        # Indexing by key is faster than .items() on a protobuf map.
        fields = details.fields
        return {key: _plain_value(fields[key]) for key in fields}
    except _NotPlainError:
        converted: dict[str, Any] = _numbers_as_doubles(json_format.MessageToDict(details))
        return converted


def new_event_from_proto(message: event_pb2.EventInput, prefix: str = "event") -> NewEvent:
    fields = {name: getattr(message, name) for name in EVENT_INPUT_FIELDS}
    details = details_from_proto(message.details) if message.HasField("details") else {}
    return validate_new_event(fields, details, prefix=prefix)


def filter_from_proto(message: Any, prefix: str = "") -> EventFilter:
    """From any message holding the EventFilter fields (EventFilter, ListEventsRequest, ...)."""
    return validate_filter({name: getattr(message, name) for name in FILTER_FIELDS}, prefix=prefix)


def filter_to_proto(event_filter: EventFilter) -> event_pb2.EventFilter:
    message = event_pb2.EventFilter()
    for name in FILTER_FIELDS:
        value = getattr(event_filter, name)
        if value:
            setattr(
                message, name, value if isinstance(value, str) else value.isoformat().replace("+00:00", "Z")
            )
    return message


def event_to_proto(record: EventRecord) -> event_pb2.AuditEvent:
    details = struct_pb2.Struct()
    details.update(record.details)
    message = event_pb2.AuditEvent(
        id=str(record.id),
        sequence=record.sequence,
        event_type=record.event_type,
        user_id=record.user_id,
        action=record.action,
        resource_type=record.resource_type,
        resource_id=record.resource_id,
        details=details,
        risk_level=record.risk_level,
        ip_address=record.ip_address,
        user_agent=record.user_agent,
        session_id=record.session_id,
        request_id=record.request_id,
        leaf_hash=record.leaf_hash.hex(),
        prev_hash=record.prev_hash.hex(),
        chain_hash=record.chain_hash.hex(),
    )
    if record.occurred_at is not None:
        message.occurred_at.FromDatetime(record.occurred_at)
    message.recorded_at.CopyFrom(_timestamp(record.recorded_at))
    return message


@functools.lru_cache(maxsize=256)
def _timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    # Every event of a sequencer batch shares recorded_at, and FromDatetime is slow Python; callers
    # copy the cached message, never change it.
    message = timestamp_pb2.Timestamp()
    message.FromDatetime(value)
    return message


__all__ = [
    "audit_service_pb2",
    "event_to_proto",
    "filter_from_proto",
    "filter_to_proto",
    "new_event_from_proto",
]
