"""Canonical bytes and hashes of an event, exactly as docs/integrity.md defines them.

canonical bytes = RFC 8785 (JCS) of a JSON object holding every event field but prev_hash and
chain_hash; leaf hash = SHA-256(0x00 || canonical bytes) (RFC 6962 leaf); chain hash of event n =
SHA-256(chain hash of n-1 || leaf hash of n), with 32 zero bytes before event 0.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from json.encoder import encode_basestring
from typing import Any

import rfc8785

from auditlog.domain.jcs import SAFE_INT, NotFastPathError, write_value

ZERO_HASH = bytes(32)
LEAF_PREFIX = b"\x00"


def format_timestamp(value: datetime) -> str:
    """RFC 3339 UTC with exactly six fractional digits and 'Z': 2024-01-01T00:00:00.000000Z."""
    if value.tzinfo is None:
        raise ValueError("timestamps in the log are timezone-aware")
    # isoformat zero-pads the year to four digits and, with timespec, always writes six fractional
    # digits; in UTC it ends in "+00:00", which becomes "Z".
    return value.astimezone(UTC).isoformat(timespec="microseconds")[:-6] + "Z"


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
    fast = _fast_canonical(
        id, sequence, event_type, user_id, action, resource_type, resource_id, details, risk_level,
        ip_address, user_agent, session_id, request_id, occurred_at, recorded_at,
    )  # fmt: skip
    if fast is not None:
        return fast
    return bytes(
        rfc8785.dumps(
            canonical_document(
                id=id,
                sequence=sequence,
                event_type=event_type,
                user_id=user_id,
                action=action,
                resource_type=resource_type,
                resource_id=resource_id,
                details=details,
                risk_level=risk_level,
                ip_address=ip_address,
                user_agent=user_agent,
                session_id=session_id,
                request_id=request_id,
                occurred_at=occurred_at,
                recorded_at=recorded_at,
            )
        )
    )


def canonical_document(
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
) -> dict[str, Any]:
    """The JSON object whose RFC 8785 serialisation is the event's canonical bytes."""
    return {
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


# The fast path below writes the same bytes as rfc8785.dumps(canonical_document(...)), much
# faster: the top-level keys are known (written here in UTF-16 order), strings go through the C
# JSON string encoder (which escapes exactly what RFC 8785 escapes: '"', '\\' and U+0000..U+001F,
# with \b \f \n \r \t short forms and lowercase \u00xx otherwise), and common details values are
# written directly. Anything else (non-integral floats, non-ASCII or non-string keys, values of
# other types, lone surrogates) is left to rfc8785 itself, so that its bytes and errors are kept
# exactly. tests/test_canonical_fast.py checks equality on arbitrary input with hypothesis.


# The event's keys in UTF-16 order; every %s is a JSON string or value, %d the sequence.
_CANONICAL_TEMPLATE = (
    '{"action":%s,"details":%s,"event_type":%s,"id":"%s","ip_address":%s,"occurred_at":%s,'
    '"recorded_at":"%s","request_id":%s,"resource_id":%s,"resource_type":%s,"risk_level":%s,'
    '"sequence":%d,"session_id":%s,"user_agent":%s,"user_id":%s}'
)


def _fast_canonical(
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
) -> bytes | None:
    """The canonical bytes, or None where the reference serialiser must decide."""
    if type(id) is not uuid.UUID or type(sequence) is not int or not -SAFE_INT <= sequence <= SAFE_INT:
        return None
    details_out: list[str] = []
    try:
        write_value(details, details_out)
        text = _CANONICAL_TEMPLATE % (
            encode_basestring(action),
            "".join(details_out),
            encode_basestring(event_type),
            str(id),
            encode_basestring(ip_address),
            "null" if occurred_at is None else '"' + format_timestamp(occurred_at) + '"',
            format_timestamp(recorded_at),
            encode_basestring(request_id),
            encode_basestring(resource_id),
            encode_basestring(resource_type),
            encode_basestring(risk_level),
            sequence,
            encode_basestring(session_id),
            encode_basestring(user_agent),
            encode_basestring(user_id),
        )
        return text.encode("utf-8")
    except (NotFastPathError, TypeError, UnicodeEncodeError):
        # Not a str where one belongs, an unusual details value, or a lone surrogate: rfc8785
        # decides (and raises its own error where it refuses).
        return None


# The same document from the stored text forms of id and the timestamps (the verifier reads them
# so, formatted by PostgreSQL): the id and timestamps go through the string encoder like any string.
_CANONICAL_TEXT_TEMPLATE = (
    '{"action":%s,"details":%s,"event_type":%s,"id":%s,"ip_address":%s,"occurred_at":%s,'
    '"recorded_at":%s,"request_id":%s,"resource_id":%s,"resource_type":%s,"risk_level":%s,'
    '"sequence":%d,"session_id":%s,"user_agent":%s,"user_id":%s}'
)


def canonical_bytes_from_text(
    id: str,
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
    occurred_at: str | None,
    recorded_at: str,
    /,
) -> bytes:
    """The canonical bytes of an event whose id and timestamps are already in their canonical text
    (str(uuid), format_timestamp): canonical_bytes of the same event, byte for byte.

    Positional, in the order of the stored columns, because the verifier calls it once per event.
    """
    if type(sequence) is int and -SAFE_INT <= sequence <= SAFE_INT:
        details_out: list[str] = []
        try:
            write_value(details, details_out)
            text = _CANONICAL_TEXT_TEMPLATE % (
                encode_basestring(action),
                "".join(details_out),
                encode_basestring(event_type),
                encode_basestring(id),
                encode_basestring(ip_address),
                "null" if occurred_at is None else encode_basestring(occurred_at),
                encode_basestring(recorded_at),
                encode_basestring(request_id),
                encode_basestring(resource_id),
                encode_basestring(resource_type),
                encode_basestring(risk_level),
                sequence,
                encode_basestring(session_id),
                encode_basestring(user_agent),
                encode_basestring(user_id),
            )
            return text.encode("utf-8")
        except (NotFastPathError, TypeError, UnicodeEncodeError):
            pass  # rfc8785 decides, as in canonical_bytes
    document: dict[str, Any] = {
        "id": id,
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
        "occurred_at": occurred_at,
        "recorded_at": recorded_at,
    }
    return bytes(rfc8785.dumps(document))


# _CANONICAL_TEMPLATE cut around the three values the sequencer assigns (id, recorded_at, sequence),
# for canonical_segments.
_SEGMENT_TEMPLATES = (
    '{"action":%s,"details":%s,"event_type":%s,"id":"',
    '","ip_address":%s,"occurred_at":%s,"recorded_at":"',
    '","request_id":%s,"resource_id":%s,"resource_type":%s,"risk_level":%s,"sequence":',
    ',"session_id":%s,"user_agent":%s,"user_id":%s}',
)


def canonical_segments(
    *,
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
    details_json: str | None = None,
) -> tuple[bytes, bytes, bytes, bytes] | None:
    """The canonical bytes of an event without the values its position gives it, as four segments
    (a, b, c, d) such that a + str(id) + b + format_timestamp(recorded_at) + c + str(sequence) + d
    (all UTF-8) is canonical_bytes of the event at that position, byte for byte (see
    canonical_bytes_from_segments). None where the fast path would leave the event to rfc8785 (or
    fail): canonical_bytes decides then. Lets a request thread do the per-event work before the
    single sequencer thread assigns positions. details_json, when given, must be jcs_text(details)
    (validation made it): it is used instead of serialising details again."""
    try:
        if details_json is None:
            details_out: list[str] = []
            write_value(details, details_out)
            details_json = "".join(details_out)
        first, second, third, fourth = _SEGMENT_TEMPLATES
        return (
            (first % (encode_basestring(action), details_json, encode_basestring(event_type))).encode(),
            (
                second
                % (
                    encode_basestring(ip_address),
                    "null" if occurred_at is None else '"' + format_timestamp(occurred_at) + '"',
                )
            ).encode(),
            (
                third
                % (
                    encode_basestring(request_id),
                    encode_basestring(resource_id),
                    encode_basestring(resource_type),
                    encode_basestring(risk_level),
                )
            ).encode(),
            (
                fourth
                % (encode_basestring(session_id), encode_basestring(user_agent), encode_basestring(user_id))
            ).encode(),
        )
    except (NotFastPathError, TypeError, ValueError, UnicodeEncodeError):
        return None


def canonical_bytes_from_segments(
    segments: tuple[bytes, bytes, bytes, bytes], id: uuid.UUID, recorded_at_text: str, sequence: int
) -> bytes:
    """canonical_bytes of the event canonical_segments cut, placed at sequence with id, recorded at
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
