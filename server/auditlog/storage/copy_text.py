"""Rows of audit_events as lines of PostgreSQL's COPY text format, written directly.

psycopg's per-value adaptation in `Copy.write_row` runs in Python on the sequencer's thread;
tests/test_copy_rows.py holds these lines to what write_row stores, on real PostgreSQL.
"""

from __future__ import annotations

import re
from datetime import datetime

from auditlog.domain.event import EventRecord, NewEvent
from auditlog.domain.jcs import jcs_text

# COPY text format (PostgreSQL docs, "COPY", "Text Format"): columns separated by tabs, rows ended by
# newlines, NULL as \N, and in values a backslash, the control characters below, the delimiter and the
# newline escaped with a backslash (the escapes psycopg's own row formatter writes).
_COPY_ESCAPES = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\v": "\\v", "\f": "\\f", "\r": "\\r", "\\": "\\\\"}
_COPY_SPECIAL = re.compile("[\b\t\n\v\f\r\\\\]")
_COPY_SPECIAL_BUT_TAB = re.compile("[\b\n\v\f\r\\\\]")


def details_text(event: NewEvent | EventRecord) -> str:
    """The JSON text PostgreSQL is given for the details of an event or record (by COPY, or as a
    jsonb[] element): their canonical (RFC 8785) text, the very text the leaf hash covers, made once
    per event by validation (jsonb keeps the values, not the text; whole numbers are stored without
    ".0")."""
    text = event.details_json
    return jcs_text(event.details) if text is None else text


def _copy_escape(value: str) -> str:
    return _COPY_SPECIAL.sub(lambda match: _COPY_ESCAPES[match.group(0)], value)


def copy_timestamp(value: datetime | None) -> str:
    # isoformat keeps the microseconds and the offset, which PostgreSQL reads back exactly.
    return "\\N" if value is None else value.isoformat()


def copy_fields(event: NewEvent | EventRecord) -> str:
    """The COPY text of the columns event_type .. occurred_at (the client's fields, which an event
    and its record share): the middle of copy_line, which a request thread can write before the
    sequencer places the event."""
    texts = (
        event.event_type,
        event.user_id,
        event.action,
        event.resource_type,
        event.resource_id,
        details_text(event),
        event.risk_level,
        event.ip_address,
        event.user_agent,
        event.session_id,
        event.request_id,
    )
    joined = "\t".join(texts)
    # One scan for the usual case of nothing to escape: no special character, and no tab but the
    # separators just added.
    if joined.count("\t") != len(texts) - 1 or _COPY_SPECIAL_BUT_TAB.search(joined):
        joined = "\t".join(map(_copy_escape, texts))
    return f"{joined}\t{copy_timestamp(event.occurred_at)}"


def copy_line(record: EventRecord, recorded_at: str, fields: str | None = None) -> str:
    """record as one line of COPY text format in COLUMNS order; recorded_at already formatted
    (copy_timestamp; a batch shares it), fields copy_fields(record) if already made. Written
    directly, without psycopg's per-value adaptation of write_row."""
    if fields is None:
        fields = copy_fields(record)
    return (
        f"{record.id}\t{record.sequence}\t{fields}\t{recorded_at}"
        f"\t\\\\x{record.leaf_hash.hex()}\t\\\\x{record.prev_hash.hex()}\t\\\\x{record.chain_hash.hex()}\n"
    )
