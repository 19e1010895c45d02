"""Rows of audit_events as lines of PostgreSQL's COPY text format, written directly.

psycopg's per-value adaptation in `Copy.write_row` was a sixth of the sequencer's time;
tests/test_copy_rows.py holds these lines to what write_row stores, on real PostgreSQL.
"""

from __future__ import annotations

import re
from datetime import datetime

from auditlog.domain.event import EventRecord
from auditlog.domain.jcs import jcs_text

# COPY text format (PostgreSQL docs, "COPY", "Text Format"): columns separated by tabs, rows ended by
# newlines, NULL as \N, and in values a backslash, the control characters below, the delimiter and the
# newline escaped with a backslash (the escapes psycopg's own row formatter writes).
_COPY_ESCAPES = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\v": "\\v", "\f": "\\f", "\r": "\\r", "\\": "\\\\"}
_COPY_SPECIAL = re.compile("[\b\t\n\v\f\r\\\\]")
_COPY_SPECIAL_BUT_TAB = re.compile("[\b\n\v\f\r\\\\]")


def details_text(record: EventRecord) -> str:
    """The JSON text PostgreSQL is given for record's details (by COPY, or as a jsonb[] element):
    their canonical (RFC 8785) text, the very text the leaf hash covers, made once per event by
    validation (jsonb keeps the values, not the text; whole numbers are stored without ".0")."""
    text = record.details_json
    return jcs_text(record.details) if text is None else text


def _copy_escape(value: str) -> str:
    return _COPY_SPECIAL.sub(lambda match: _COPY_ESCAPES[match.group(0)], value)


def copy_timestamp(value: datetime | None) -> str:
    # isoformat keeps the microseconds and the offset, which PostgreSQL reads back exactly.
    return "\\N" if value is None else value.isoformat()


def copy_line(record: EventRecord, recorded_at: str) -> str:
    """record as one line of COPY text format in COLUMNS order; recorded_at already formatted
    (copy_timestamp; a batch shares it). Written directly: psycopg's per-value adaptation of
    write_row was a sixth of the sequencer's time."""
    texts = (
        record.event_type,
        record.user_id,
        record.action,
        record.resource_type,
        record.resource_id,
        details_text(record),
        record.risk_level,
        record.ip_address,
        record.user_agent,
        record.session_id,
        record.request_id,
    )
    joined = "\t".join(texts)
    # One scan for the usual case of nothing to escape: no special character, and no tab but the
    # separators just added.
    if joined.count("\t") != len(texts) - 1 or _COPY_SPECIAL_BUT_TAB.search(joined):
        joined = "\t".join(map(_copy_escape, texts))
    return (
        f"{record.id}\t{record.sequence}\t{joined}\t{copy_timestamp(record.occurred_at)}\t{recorded_at}"
        f"\t\\\\x{record.leaf_hash.hex()}\t\\\\x{record.prev_hash.hex()}\t\\\\x{record.chain_hash.hex()}\n"
    )
