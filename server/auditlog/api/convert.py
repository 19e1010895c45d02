"""Between protobuf messages and domain values."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any, TypeVar

from google.protobuf import struct_pb2, timestamp_pb2

from audit.v1 import audit_service_pb2, event_pb2
from auditlog.domain.event import EventRecord, NewEvent
from auditlog.domain.filters import FILTER_FIELDS, EventFilter
from auditlog.domain.jcs import json_loads
from auditlog.domain.schema import CLIENT_NAMES, FIELDS, Kind, compile_function
from auditlog.domain.validation import validate_filter, validate_new_event

# The string fields of EventInput: every NewEvent field but details (a Struct) and the text
# validation makes of it; occurred_at arrives as text and is parsed by validation.
EVENT_INPUT_FIELDS = tuple(name for name in CLIENT_NAMES if name != "details")


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
    """A Struct value the direct conversion leaves to the slow path (non-finite numbers, -0.0)."""


def _plain_value(value: struct_pb2.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return value.string_value
    if kind == "number_value":
        number = value.number_value
        if not math.isfinite(number) or (number == 0.0 and math.copysign(1.0, number) < 0.0):
            # -0.0 is stored as 0.0 (see _numbers_as_doubles); leaving it to the slow path keeps
            # every Struct this function reads whole equal to the Struct of the dict it returns.
            raise _NotPlainError
        return number
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


def _details_and_exactness(details: struct_pb2.Struct) -> tuple[dict[str, Any], bool]:
    """The Struct as a dict with every number a double: what json_format.MessageToDict followed by
    _numbers_as_doubles gives, read directly (json_format is several times slower), except that NaN
    and infinities, which json_format refuses, are kept for validation to name. And whether
    Struct.update of that dict gives back a Struct equal to details (true unless a number is -0.0,
    stored as 0.0, or not finite)."""
    try:
        # Indexing by key is faster than .items() on a protobuf map.
        fields = details.fields
        return {key: _plain_value(fields[key]) for key in fields}, True
    except _NotPlainError:
        fields = details.fields
        return {key: _any_value(fields[key]) for key in fields}, False


def _any_value(value: struct_pb2.Value) -> Any:
    """_plain_value for any Value: -0.0 as 0.0, and NaN and infinities kept, for validation to
    refuse by their path (json_format.MessageToDict raises on them)."""
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        return value.number_value + 0.0
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        fields = value.struct_value.fields
        return {key: _any_value(fields[key]) for key in fields}
    if kind == "list_value":
        return [_any_value(item) for item in value.list_value.values]
    return None  # null_value, or no kind set (json_format reads that as null too)


def event_and_details_from_proto(
    message: event_pb2.EventInput, prefix: str = "event"
) -> tuple[NewEvent, struct_pb2.Struct | None]:
    """The validated event, and the request's details Struct when it equals the Struct of the
    event's details as the log will store and return them (None otherwise), so that an answer can
    copy it instead of rebuilding it (see event_to_proto)."""
    fields = {name: getattr(message, name) for name in EVENT_INPUT_FIELDS}
    if message.HasField("details"):
        details, exact = _details_and_exactness(message.details)
        sent = message.details if exact else None
    else:
        details, sent = {}, _EMPTY_STRUCT
    return validate_new_event(fields, details, prefix=prefix), sent


_EMPTY_STRUCT = struct_pb2.Struct()


def filter_from_proto(message: Any, prefix: str = "") -> EventFilter:
    """From any message holding the EventFilter fields (EventFilter, ListEventsRequest, ...)."""
    return validate_filter({name: getattr(message, name) for name in FILTER_FIELDS}, prefix=prefix)


def filter_to_proto(event_filter: EventFilter) -> event_pb2.EventFilter:
    message = event_pb2.EventFilter()
    for name, value in event_filter.values().items():
        if value:
            setattr(
                message, name, value if isinstance(value, str) else value.isoformat().replace("+00:00", "Z")
            )
    return message


def event_to_proto(record: EventRecord, details: struct_pb2.Struct | None = None) -> event_pb2.AuditEvent:
    """The API form of record. details, when given, must equal the Struct of record.details (as
    event_and_details_from_proto vouches): copying it is much faster than Struct.update."""
    message = event_pb2.AuditEvent()
    fill_event_proto(message, record, details)
    return message


def _generate_fill(name: str, *, from_row: bool) -> str:
    """Source of fill_event_proto (from a record) or fill_event_proto_from_row (from a search row:
    id and hashes as text, timestamps as epoch microseconds, details as JSON text)."""
    lines = []
    for field in FIELDS:
        value, target = f"r.{field.name}", f"m.{field.name}"
        if field.kind is Kind.JSON:
            if from_row:
                lines.append(f"_struct = {target}")
                lines.append("_struct.SetInParent()")  # present even when empty
                lines.append(f"_fill_struct(_struct.fields, _json_loads({value}))")
            else:
                lines.append(f"if details is None:\n        {target}.SetInParent()")
                lines.append(f"    {target}.update({value})")
                lines.append(f"else:\n        {target}.CopyFrom(details)")
        elif field.kind is Kind.TIMESTAMP:
            setter = (
                f"_set_timestamp({target}, {value})"
                if from_row
                else f"{target}.CopyFrom(_timestamp({value}))"
            )
            lines.append(f"if {value} is not None:\n        {setter}" if field.nullable else setter)
        elif field.kind is Kind.UUID and not from_row:
            lines.append(f"{target} = str({value})")
        elif field.kind is Kind.HASH and not from_row:
            lines.append(f"{target} = {value}.hex()")
        else:
            lines.append(f"{target} = {value}")
    arguments = "m, r" if from_row else "m, r, details=None"
    return f"def {name}({arguments}):\n" + "".join(f"    {line}\n" for line in lines)


# Bounds of one streamed message of events (SearchEvents, TailEvents): a gRPC stream message costs
# the synchronous server far more than an event in it, so events travel in batches.
MESSAGE_EVENTS = 1_000
MESSAGE_BYTES = 1 << 20
# What an event adds to its message beyond its own size: the field tag and a length of up to 5 bytes.
_EVENT_FRAMING_BYTES = 6
_Message = TypeVar("_Message", audit_service_pb2.SearchEventsResponse, audit_service_pb2.TailEventsResponse)


def row_messages(rows: Iterable[Any], new_message: Callable[[], _Message]) -> Iterator[_Message]:
    """Search rows (storage.api.SearchRow) as stream messages, in order: each non-empty, with at most
    MESSAGE_EVENTS events and at most MESSAGE_BYTES serialised, except that an event larger than that
    goes alone. Each event is filled in place in the message that carries it."""
    message = new_message()
    events = message.events
    count = size = 0
    for row in rows:
        event = events.add()
        fill_event_proto_from_row(event, row)
        event_size = event.ByteSize() + _EVENT_FRAMING_BYTES
        if size + event_size > MESSAGE_BYTES and count:
            # This event would take the message past its byte bound: it starts the next one.
            moved = events.pop()
            yield message
            message = new_message()
            events = message.events
            events.append(moved)
            count = size = 0
        count += 1
        size += event_size
        if count == MESSAGE_EVENTS:
            yield message
            message = new_message()
            events = message.events
            count = size = 0
    if count:
        yield message


# Timestamp's range (RFC 3339 years 1 to 9999), in microseconds since the Unix epoch. Nothing the
# service writes lies outside it; a value written behind its back fails the read, as reading it into
# a datetime does.
_MIN_MICROS = -62_135_596_800 * 1_000_000
_END_MICROS = 253_402_300_800 * 1_000_000


def _set_timestamp(message: timestamp_pb2.Timestamp, micros: int) -> None:
    """Timestamp.FromDatetime of the UTC datetime that is micros microseconds after the epoch."""
    if not _MIN_MICROS <= micros < _END_MICROS:
        raise ValueError(f"timestamp out of range: {micros} microseconds from the epoch")
    seconds, fraction = divmod(micros, 1_000_000)
    message.seconds = seconds
    message.nanos = fraction * 1_000


def _fill_struct(fields: Any, value: dict[str, Any]) -> None:
    """Struct.update(value) on an empty Struct's fields."""
    for key, item in value.items():
        kind = type(item)
        # Strings and numbers inline (saves a call per value); the rest below.
        if kind is str:
            fields[key].string_value = item
        elif kind is float:
            fields[key].number_value = item
        else:
            _set_value(fields[key], item)


def _set_value(message: struct_pb2.Value, item: Any) -> None:
    """What Struct.update sets for item in an empty Value, by a dispatch on the exact types json_loads
    gives (str, float, dict, list, bool, None), most common first, instead of protobuf's isinstance
    chain. Anything else takes protobuf's own path."""
    kind = type(item)
    if kind is str:
        message.string_value = item
    elif kind is float:
        message.number_value = item
    elif kind is dict:
        nested = message.struct_value
        nested.SetInParent()  # {} is a struct_value too
        _fill_struct(nested.fields, item)
    elif kind is list:
        items = message.list_value
        items.SetInParent()  # [] is a list_value too
        add = items.values.add
        for element in item:
            _set_value(add(), element)
    elif kind is bool:
        message.bool_value = item
    elif item is None:
        message.null_value = struct_pb2.NULL_VALUE
    else:
        holder = struct_pb2.ListValue()
        holder.append(item)
        message.CopyFrom(holder.values[0])


@functools.lru_cache(maxsize=256)
def _timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    # Every event of a sequencer batch shares recorded_at, and FromDatetime is slow Python; callers
    # copy the cached message, never change it.
    message = timestamp_pb2.Timestamp()
    message.FromDatetime(value)
    return message


_FILL_NAMESPACE: dict[str, Any] = {
    "_fill_struct": _fill_struct,
    "_json_loads": json_loads,
    "_set_timestamp": _set_timestamp,
    "_timestamp": _timestamp,
}
# Generated: setting fields one by one is faster than keyword arguments or a loop.
fill_event_proto: Callable[[event_pb2.AuditEvent, EventRecord, struct_pb2.Struct | None], None] = (
    compile_function("fill_event_proto", _generate_fill("fill_event_proto", from_row=False), _FILL_NAMESPACE)
)
fill_event_proto.__doc__ = """event_to_proto into an empty message, such as one just added to a response's repeated
field (filling it in place saves copying a built message into the response)."""
fill_event_proto_from_row: Callable[[event_pb2.AuditEvent, Any], None] = compile_function(
    "fill_event_proto_from_row", _generate_fill("fill_event_proto_from_row", from_row=True), _FILL_NAMESPACE
)
fill_event_proto_from_row.__doc__ = """What fill_event_proto gives for the record of a stored event, filled straight from its
row of storage.postgres.search (a schema.EventRow: id and hashes as text, timestamps as epoch microseconds,
details as JSON text), with no EventRecord, UUID, datetime or bytes built on the way. For an empty
message, such as one just added to a response's repeated field."""


__all__ = [
    "audit_service_pb2",
    "event_and_details_from_proto",
    "event_to_proto",
    "fill_event_proto",
    "fill_event_proto_from_row",
    "filter_from_proto",
    "filter_to_proto",
]
