"""Request validation: every client-supplied value is checked here, and all problems of one request
are reported together as field violations (`got X, want Y`)."""

from __future__ import annotations

import functools
import ipaddress
import math
import operator
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from auditlog.domain import schema
from auditlog.domain.event import RISK_LEVELS, NewEvent, assemble
from auditlog.domain.filters import TEXT_FILTER_FIELDS, EventFilter
from auditlog.domain.jcs import jcs_text
from auditlog.errors import FieldViolation, InvalidArgumentError

MAX_DETAILS_BYTES = 65_536
# Objects and lists in details nest at most this deep (details itself is the first level): well
# inside what protobuf decodes (a Struct level costs three message levels of its limit of 100).
MAX_DETAILS_DEPTH = 20
MAX_BATCH_EVENTS = 1_000
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1_000
MAX_PAGE = 10_000

# Single-line text fields and their maximum lengths in characters.
TEXT_LIMITS = schema.TEXT_LIMITS
_TEXT_LIMIT_VALUES = tuple(TEXT_LIMITS.values())
# The longest IPv6 text (45 characters, IPv4-mapped) with room for a scope id such as an interface name.
MAX_IP_TEXT = 64
REQUIRED_FIELDS = schema.REQUIRED_NAMES
# Client fields taken as received ("" when absent); validate_new_event makes the others.
_PLAIN_TEXTS = tuple(
    name for name in schema.CLIENT_NAMES if name not in ("details", "risk_level", "ip_address", "occurred_at")
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# ASCII digits only: Python's \d (and int) would take any script's digits. A space before an
# offset is a `+` that form encoding of a query string turned into one.
_DATE_ONLY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_RFC3339 = re.compile(
    r"^([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]{1,9})?"
    r"([Zz]|[+ -][0-9]{2}:[0-9]{2})?$"
)
_BLANKS = ("",) * len(_PLAIN_TEXTS)


def _show(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_text(field: str, value: str, limit: int, violations: list[FieldViolation]) -> None:
    """Appends a violation when value is too long or holds control characters."""
    if len(value) > limit:
        violations.append(FieldViolation(field, f"got {len(value)} characters, want at most {limit}"))
    if _CONTROL.search(value):
        violations.append(FieldViolation(field, "got control characters, want printable text"))


def parse_datetime(field: str, value: str) -> datetime:
    """Parses RFC 3339 (offset optional: read as UTC; a bare date is midnight UTC) to aware UTC,
    truncated to microseconds. Raises InvalidArgumentError naming the field."""
    text = value.strip()
    if _DATE_ONLY.match(text):
        text += "T00:00:00"
    match = _RFC3339.match(text)
    parsed: datetime | None = None
    if match:
        year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
        fraction = (match.group(7) or ".0")[1:]
        micro = int(fraction[:6].ljust(6, "0"))
        offset = match.group(8)
        try:
            base = datetime(year, month, day, hour, minute, second, micro)
            if offset is None or offset in "Zz":
                parsed = base.replace(tzinfo=UTC)
            else:
                offset = offset.replace(" ", "+")
                parsed = datetime.fromisoformat(base.isoformat() + offset).astimezone(UTC)
        except (ValueError, OverflowError):
            parsed = None
    if parsed is None:
        raise InvalidArgumentError(
            [
                FieldViolation(
                    field, f"got {_show(value)}, want an RFC 3339 date-time like 2024-01-01T00:00:00Z"
                )
            ]
        )
    return parsed


def _check_json_value(value: Any, path: str, violations: list[FieldViolation]) -> None:
    if isinstance(value, str):
        if "\x00" in value:
            violations.append(FieldViolation(path, "got a NUL character, want text without NUL"))
    elif isinstance(value, float):
        if not math.isfinite(value):
            shown = "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
            violations.append(FieldViolation(path, f"got {shown}, want a finite number"))
    elif isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                violations.append(
                    FieldViolation(path, "got a key with a NUL character, want text without NUL")
                )
            _check_json_value(item, f"{path}.{key}", violations)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_json_value(item, f"{path}[{index}]", violations)


def check_details(
    field: str, details: Mapping[str, Any], violations: list[FieldViolation]
) -> tuple[dict[str, Any], str]:
    """Checks the details object: JSON-safe values, nested at most MAX_DETAILS_DEPTH levels, and at
    most MAX_DETAILS_BYTES canonical bytes.
    Returns the object and its canonical (RFC 8785) text, which the log hashes and stores (the text
    is meaningless when a violation was added)."""
    checked = dict(details)
    # Fast path for the usual clean object: its canonical text, needed for the size anyway, shows a
    # NUL (escaped as \u0000; a backslash in text may look like one and then takes the full walk) and
    # serialisation fails on a non-finite number; anything unclear takes the walk below, which names
    # the path of every problem.
    try:
        canonical: str | None = jcs_text(checked)
    except ValueError:
        canonical = None
    if (
        canonical is not None
        and "\\u0000" not in canonical
        and _utf8_size(canonical) <= MAX_DETAILS_BYTES
        # No more brackets than levels allowed bounds the depth without a walk.
        and (
            canonical.count("{") + canonical.count("[") <= MAX_DETAILS_DEPTH
            or _depth(checked) <= MAX_DETAILS_DEPTH
        )
    ):
        return checked, canonical
    before = len(violations)
    depth = _depth(checked)
    if depth > MAX_DETAILS_DEPTH:
        violations.append(
            FieldViolation(
                field, f"got objects and lists nested {depth} levels deep, want at most {MAX_DETAILS_DEPTH}"
            )
        )
    _check_json_value(checked, field, violations)
    if len(violations) == before:
        canonical = jcs_text(checked)
        size = _utf8_size(canonical)
        if size > MAX_DETAILS_BYTES:
            violations.append(
                FieldViolation(field, f"got {size} bytes of canonical JSON, want at most {MAX_DETAILS_BYTES}")
            )
        return checked, canonical
    return checked, ""


def _depth(details: Mapping[str, Any]) -> int:
    """How deep objects and lists nest in details, details itself being level 1."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(details, 1)]
    while pending:
        value, level = pending.pop()
        deepest = max(deepest, level)
        children = value.values() if isinstance(value, Mapping) else value
        pending.extend((child, level + 1) for child in children if isinstance(child, Mapping | list))
    return deepest


def _utf8_size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def normalise_ip(field: str, value: str, violations: list[FieldViolation]) -> str:
    """The normalised text form of an IPv4 or IPv6 address, or "" when unset."""
    if value == "":
        return ""
    # An IPv6 scope id ("fe80::1%eth0") is free text to ipaddress; bounded here like every text field.
    normalised = None if len(value) > MAX_IP_TEXT or _CONTROL.search(value) else _normalised_ip(value)
    if normalised is None:
        violations.append(
            FieldViolation(
                field, f"got {_show(value)}, want an IPv4 or IPv6 address of at most {MAX_IP_TEXT} characters"
            )
        )
        return value
    return normalised


@functools.lru_cache(maxsize=4_096)
def _normalised_ip(value: str) -> str | None:
    # Addresses repeat from event to event, and parsing one costs more than the rest of its checks.
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def check_risk_level(field: str, value: str, violations: list[FieldViolation]) -> None:
    if value and value not in RISK_LEVELS:
        violations.append(FieldViolation(field, f"got {_show(value)}, want one of {', '.join(RISK_LEVELS)}"))


def validate_new_event(
    fields: Mapping[str, str], details: Mapping[str, Any], prefix: str = "event"
) -> NewEvent:
    """Validates one event's fields (strings as received) and details; raises with every violation."""
    violations: list[FieldViolation] = []
    for name in REQUIRED_FIELDS:
        if not fields.get(name, "").strip():
            violations.append(FieldViolation(f"{prefix}.{name}", "got nothing, want a non-empty value"))
    texts = [fields.get(name, "") for name in TEXT_LIMITS]
    # One scan of all the text fields in the usual case that every one is fine; field by field (for
    # the messages) otherwise.
    if _CONTROL.search("".join(texts)) or any(map(operator.gt, map(len, texts), _TEXT_LIMIT_VALUES)):
        for name, limit in TEXT_LIMITS.items():
            check_text(f"{prefix}.{name}", fields.get(name, ""), limit, violations)
    risk_level = fields.get("risk_level", "")
    check_risk_level(f"{prefix}.risk_level", risk_level, violations)
    ip = normalise_ip(f"{prefix}.ip_address", fields.get("ip_address", ""), violations)
    checked_details, details_json = check_details(f"{prefix}.details", details, violations)
    occurred_at: datetime | None = None
    if fields.get("occurred_at", ""):
        try:
            occurred_at = parse_datetime(f"{prefix}.occurred_at", fields["occurred_at"])
        except InvalidArgumentError as err:
            violations.extend(err.violations)
    if violations:
        raise InvalidArgumentError(violations)
    values: dict[str, Any] = dict(zip(_PLAIN_TEXTS, map(fields.get, _PLAIN_TEXTS, _BLANKS), strict=True))
    values["details"] = checked_details
    values["risk_level"] = risk_level
    values["ip_address"] = ip
    values["occurred_at"] = occurred_at
    values["details_json"] = details_json
    return assemble(NewEvent, values)


def validate_filter(fields: Mapping[str, str], prefix: str = "") -> EventFilter:
    """Validates filter fields (strings, "" meaning unset) into an EventFilter."""
    violations: list[FieldViolation] = []

    def name(field: str) -> str:
        return f"{prefix}{field}"

    for field, limit in TEXT_LIMITS.items():
        if field in fields:
            check_text(name(field), fields[field], limit, violations)
    risk_level = fields.get("risk_level", "")
    check_risk_level(name("risk_level"), risk_level, violations)
    ip = normalise_ip(name("ip_address"), fields.get("ip_address", ""), violations)
    bounds: dict[str, datetime | None] = {"start_date": None, "end_date": None}
    for field in bounds:
        if fields.get(field, ""):
            try:
                bounds[field] = parse_datetime(name(field), fields[field])
            except InvalidArgumentError as err:
                violations.extend(err.violations)
    start, end = bounds["start_date"], bounds["end_date"]
    if start is not None and end is not None and start > end:
        violations.append(
            FieldViolation(name("end_date"), "got a value before start_date, want end_date >= start_date")
        )
    if violations:
        raise InvalidArgumentError(violations)
    texts = {name: fields.get(name, "") for name in TEXT_FILTER_FIELDS}
    texts.update(risk_level=risk_level, ip_address=ip)
    return EventFilter.of(texts, start, end)


def validate_page_size(field: str, value: int) -> int:
    """0 means the default; otherwise 1..MAX_PAGE_SIZE."""
    if value == 0:
        return DEFAULT_PAGE_SIZE
    if value < 0 or value > MAX_PAGE_SIZE:
        raise InvalidArgumentError([FieldViolation(field, f"got {value}, want 1 to {MAX_PAGE_SIZE}")])
    return value


def validate_uuid(field: str, value: str) -> uuid.UUID:
    """Parses a hyphenated UUID; raises naming the field otherwise."""
    try:
        if len(value) != 36:
            raise ValueError(value)
        return uuid.UUID(value)
    except ValueError:
        raise InvalidArgumentError(
            [
                FieldViolation(
                    field, f"got {_show(value)}, want a UUID like 123e4567-e89b-12d3-a456-426614174000"
                )
            ]
        ) from None
