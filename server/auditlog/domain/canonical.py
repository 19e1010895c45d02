"""Canonical bytes and hashes of an event, exactly as docs/integrity.md defines them.

canonical bytes = RFC 8785 (JCS) of a JSON object holding every event field of the row's canonical
form version (version 2 adds recorded_by to version 1) but the hashes; leaf hash = SHA-256(0x00 || canonical bytes) (RFC 6962 leaf); chain hash of event n =
SHA-256(chain hash of n-1 || leaf hash of n), with 32 zero bytes before event 0.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from json.encoder import encode_basestring
from typing import Any

import rfc8785

from auditlog.domain.jcs import SAFE_INT, NotFastPathError, write_value
from auditlog.domain.schema import (
    CANONICAL_FIELDS,
    CANONICAL_FIELDS_BY_VERSION,
    NAMES,
    Field,
    Kind,
    compile_function,
)

ZERO_HASH = bytes(32)
LEAF_PREFIX = b"\x00"


def format_timestamp(value: datetime) -> str:
    """RFC 3339 UTC with exactly six fractional digits and 'Z': 2024-01-01T00:00:00.000000Z."""
    if value.tzinfo is None:
        raise ValueError("timestamps in the log are timezone-aware")
    # isoformat zero-pads the year to four digits and, with timespec, always writes six fractional
    # digits; in UTC it ends in "+00:00", which becomes "Z".
    return value.astimezone(UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def _version_of(names: Any) -> int:
    """The canonical form version whose members are exactly names (no version key is hashed)."""
    version = _VERSION_BY_NAMES.get(frozenset(names))
    if version is None:
        wanted = " or ".join(", ".join(f.name for f in fs) for fs in CANONICAL_FIELDS_BY_VERSION.values())
        raise TypeError(f"canonical_bytes takes exactly {wanted}")
    return version


def canonical_bytes(**values: Any) -> bytes:
    """The JCS serialisation of the event's hashed fields, given by name: the members of one
    canonical form version (schema.CANONICAL_FIELDS_BY_VERSION), which tells the version."""
    version = _version_of(values.keys())
    fast: bytes | None = _fast_canonical[version](values)
    if fast is not None:
        return fast
    return bytes(rfc8785.dumps(canonical_document(**values)))


def canonical_document(**values: Any) -> dict[str, Any]:
    """The JSON object whose RFC 8785 serialisation is the event's canonical bytes."""
    document: dict[str, Any] = {}
    for field in CANONICAL_FIELDS_BY_VERSION[_version_of(values.keys())]:
        value = values[field.name]
        if field.kind is Kind.UUID:
            value = str(value)
        elif field.kind is Kind.TIMESTAMP:
            value = None if value is None else format_timestamp(value)
        document[field.name] = value
    return document


# The fast paths below write the same bytes as rfc8785.dumps(canonical_document(...)), much
# faster: the top-level keys are known (the templates hold them in UTF-16 order), strings go through
# the C JSON string encoder (which escapes exactly what RFC 8785 escapes: '"', '\\' and
# U+0000..U+001F, with \b \f \n \r \t short forms and lowercase \u00xx otherwise), and common
# details values are written directly. Anything else (non-integral floats, non-ASCII or non-string
# keys, values of other types, lone surrogates) is left to rfc8785 itself, so that its bytes and
# errors are kept exactly. tests/unit/test_canonical_fast.py checks equality on arbitrary input with
# hypothesis. The functions are generated from the schema at import, one expression per member.

_VERSION_BY_NAMES = {
    frozenset(f.name for f in fields): version for version, fields in CANONICAL_FIELDS_BY_VERSION.items()
}
# Server-given members known when the event is handed to the sequencer (canonical_segments takes them).
_GIVEN = ("recorded_by",)
# The members the sequencer assigns, cut out of the template by canonical_segments, in key order;
# canonical_bytes_from_segments takes them in this order.
_CUTS = tuple(f.name for f in CANONICAL_FIELDS if not f.client and f.name not in _GIVEN)
if _CUTS != ("id", "recorded_at", "sequence"):
    raise ImportError(f"canonical_bytes_from_segments expects the cuts id, recorded_at, sequence: {_CUTS}")


def _member(field: Field, value: str, *, as_text: bool) -> tuple[str, str]:
    """The template's placeholder and the argument expression for one member whose value is the
    expression value; as_text: the id and timestamps are already in their canonical text."""
    if field.kind is Kind.JSON:
        return "%s", '"".join(_details_out)'
    if field.kind is Kind.SEQUENCE:
        return "%d", value
    if field.kind is Kind.TEXT or (as_text and field.kind in (Kind.UUID, Kind.TIMESTAMP)):
        if field.nullable:
            return "%s", f'"null" if {value} is None else _enc({value})'
        return "%s", f"_enc({value})"
    if field.kind is Kind.UUID:
        return '"%s"', f"str({value})"
    if field.kind is Kind.TIMESTAMP:
        if field.nullable:
            return "%s", f"""'null' if {value} is None else '"' + _fmt({value}) + '"'"""
        return '"%s"', f"_fmt({value})"
    raise ImportError(f"no canonical form for {field.name}")


def _template(members: list[tuple[Field, str]]) -> str:
    return "{" + ",".join(f'"{field.name}":{placeholder}' for field, placeholder in members) + "}"


def _generate_whole(
    name: str, read: Callable[[str], str], *, as_text: bool, guard: str, fields: tuple[Field, ...]
) -> str:
    """Source of a function of one argument (e) giving the canonical bytes of the form whose members
    are fields, or None where rfc8785 must decide; read(name) is the expression reading the member
    called name from e."""
    members = [_member(f, read(f.name), as_text=as_text) for f in fields]
    template = _template([(f, placeholder) for f, (placeholder, _) in zip(fields, members, strict=True)])
    arguments = ",\n            ".join(expression for _, expression in members)
    details = read(next(f.name for f in fields if f.kind is Kind.JSON))
    return f"""
def {name}(e):
    if not ({guard}):
        return None
    _details_out = []
    try:
        _write({details}, _details_out)
        return ({template!r} % (
            {arguments},
        )).encode("utf-8")
    except (NotFastPathError, TypeError, UnicodeEncodeError):
        return None
"""


def _sequence_guard(read: Callable[[str], str]) -> str:
    return " and ".join(
        f"type({read(f.name)}) is int and -_SAFE <= {read(f.name)} <= _SAFE"
        for f in CANONICAL_FIELDS
        if f.kind is Kind.SEQUENCE
    )


def _generate_segments() -> str:
    """Source of _segments(e, details_json, recorded_by): canonical_segments' four segments (of the
    current canonical form)."""
    segments: list[list[tuple[str, str]]] = [[]]
    templates = [""]
    for index, field in enumerate(CANONICAL_FIELDS):
        key = ("{" if index == 0 else ",") + f'"{field.name}":'
        if field.client or field.name in _GIVEN:
            source = f"e.{field.name}" if field.client else field.name
            placeholder, expression = _member(field, source, as_text=False)
            templates[-1] += key + placeholder
            segments[-1].append((placeholder, expression.replace('"".join(_details_out)', "details_json")))
        else:
            quote = "" if field.kind is Kind.SEQUENCE else '"'
            templates[-1] += key + quote
            templates.append(quote)
            segments.append([])
    templates[-1] += "}"
    parts = ",\n        ".join(
        f"({template!r} % ({''.join(e + ', ' for _, e in members)})).encode()"
        for template, members in zip(templates, segments, strict=True)
    )
    return f"""
def _segments(e, details_json, {", ".join(_GIVEN)}):
    return (
        {parts},
    )
"""


_NAMESPACE: dict[str, Any] = {
    "_enc": encode_basestring,
    "_fmt": format_timestamp,
    "_write": write_value,
    "_SAFE": SAFE_INT,
    "_UUID": uuid.UUID,
    "NotFastPathError": NotFastPathError,
}


def _by_key(name: str) -> str:
    return f"e[{name!r}]"


def _by_column(name: str) -> str:
    # An EventRow is a tuple in the schema's column order: its index, worked out here from the
    # name, reads it faster than the attribute once per field of every verified event.
    return f"e[{NAMES.index(name)}]"


_fast_canonical = {
    version: compile_function(
        "_fast_canonical",
        _generate_whole(
            "_fast_canonical",
            _by_key,
            as_text=False,
            guard=" and ".join(
                [f"type(e[{f.name!r}]) is _UUID" for f in fields if f.kind is Kind.UUID]
                + [_sequence_guard(_by_key)]
            ),
            fields=fields,
        ),
        dict(_NAMESPACE),
    )
    for version, fields in CANONICAL_FIELDS_BY_VERSION.items()
}
_fast_from_text = {
    version: compile_function(
        "_fast_from_text",
        _generate_whole(
            "_fast_from_text", _by_column, as_text=True, guard=_sequence_guard(_by_column), fields=fields
        ),
        dict(_NAMESPACE),
    )
    for version, fields in CANONICAL_FIELDS_BY_VERSION.items()
}
_segments = compile_function("_segments", _generate_segments(), dict(_NAMESPACE))


def canonical_bytes_from_text(event: Any) -> bytes:
    """The canonical bytes of a stored event (a schema.EventRow) whose id
    and timestamps are already in their canonical text (str(uuid), format_timestamp), by the form its
    canonical_version names: canonical_bytes of the same event, byte for byte. The verifier calls it
    once per event. Raises ValueError for a version no form has."""
    version = event.canonical_version
    function = _fast_from_text.get(version)
    if function is None:
        raise ValueError(f"canonical form version {version!r} does not exist")
    fast: bytes | None = function(event)
    if fast is not None:
        return fast
    return bytes(
        rfc8785.dumps({f.name: getattr(event, f.name) for f in CANONICAL_FIELDS_BY_VERSION[version]})
    )


def canonical_segments(event: Any, recorded_by: str = "") -> tuple[bytes, bytes, bytes, bytes] | None:
    """The canonical bytes of an event (a NewEvent, or anything with its client attributes and
    details_json) without the values its position gives it, as four segments (a, b, c, d) such that
    a + str(id) + b + format_timestamp(recorded_at) + c + str(sequence) + d (all UTF-8) is
    canonical_bytes of the event at that position, byte for byte (see
    canonical_bytes_from_segments). None where the fast path would leave the event to rfc8785 (or
    fail): canonical_bytes decides then. recorded_by: the principal writing it (the current form
    hashes it). Lets a request thread do the per-event work before the
    single sequencer thread assigns positions. details_json, when not None, must be
    jcs_text(details) (validation made it): it is used instead of serialising details again."""
    try:
        details_json = event.details_json
        if details_json is None:
            details_out: list[str] = []
            write_value(event.details, details_out)
            details_json = "".join(details_out)
        segments: tuple[bytes, bytes, bytes, bytes] = _segments(event, details_json, recorded_by)
        return segments
    except (NotFastPathError, TypeError, ValueError, UnicodeEncodeError):
        return None


def canonical_bytes_from_segments(
    segments: tuple[bytes, bytes, bytes, bytes], id: uuid.UUID, recorded_at_text: str, sequence: int
) -> bytes:
    """canonical_bytes (current form) of the event canonical_segments cut, placed at sequence with id, recorded at
    the moment whose format_timestamp is recorded_at_text (a batch shares it)."""
    if type(sequence) is not int or not -SAFE_INT <= sequence <= SAFE_INT:
        raise ValueError(f"sequence {sequence!r} is not an integer JSON holds exactly")
    first, second, third, fourth = segments
    return b"".join(
        (first, str(id).encode(), second, recorded_at_text.encode(), third, str(sequence).encode(), fourth)
    )


def leaf_hash(canonical: bytes) -> bytes:
    """SHA-256(0x00 || canonical bytes)."""
    return hashlib.sha256(LEAF_PREFIX + canonical).digest()


def chain_hash(prev_chain_hash: bytes, leaf: bytes) -> bytes:
    """SHA-256(previous chain hash || leaf hash)."""
    if len(prev_chain_hash) != 32 or len(leaf) != 32:
        raise ValueError("chain and leaf hashes are 32 bytes")
    return hashlib.sha256(prev_chain_hash + leaf).digest()
