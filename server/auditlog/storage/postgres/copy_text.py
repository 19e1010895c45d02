"""Rows of audit_events as lines of PostgreSQL's COPY text format, written directly.

psycopg's per-value adaptation in `Copy.write_row` runs in Python on the sequencer's thread;
tests/integration/test_copy_rows.py holds these lines to what write_row stores, on real PostgreSQL.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime

from auditlog.domain.event import EventRecord, NewEvent
from auditlog.domain.jcs import jcs_text
from auditlog.domain.schema import FIELDS, Kind, compile_function

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


def _generate() -> str:
    """Source of copy_fields and copy_line, one expression per column of the schema."""
    client = [f for f in FIELDS if f.client]
    texts = [f for f in client if f.kind in (Kind.TEXT, Kind.JSON)]
    stamps = [f for f in client if f.kind is Kind.TIMESTAMP]
    if client != texts + stamps:
        raise ImportError("copy_fields expects the client's text columns, then its timestamps")
    names = ", ".join("details_text(e)" if f.kind is Kind.JSON else f"e.{f.name}" for f in texts)
    stamp_text = "".join(f"\\t{{copy_timestamp(e.{f.name})}}" for f in stamps)
    line = []
    for field in FIELDS:
        if field.client:
            if field is client[0]:
                line.append("{fields}")
        elif field.kind is Kind.TIMESTAMP:
            line.append("{recorded_at}")  # the one server timestamp, formatted once per batch
        elif field.kind is Kind.HASH:
            line.append(f"\\\\\\\\x{{r.{field.name}.hex()}}")
        elif field.kind is Kind.TEXT:
            line.append(f"{{_copy_escape(r.{field.name})}}")
        else:
            line.append(f"{{r.{field.name}}}")
    return (
        "def copy_fields(e):\n"
        f"    texts = ({names},)\n"
        '    joined = "\\t".join(texts)\n'
        f'    if joined.count("\\t") != {len(texts) - 1} or _SPECIAL_BUT_TAB.search(joined):\n'
        '        joined = "\\t".join(map(_copy_escape, texts))\n'
        f'    return f"{{joined}}{stamp_text}"\n'
        "\n"
        "def copy_line(r, recorded_at, fields=None):\n"
        "    if fields is None:\n"
        "        fields = copy_fields(r)\n"
        '    return f"' + "\\t".join(line) + '\\n"\n'
    )


_generated = _generate()
copy_fields: Callable[[NewEvent | EventRecord], str] = compile_function(
    "copy_fields",
    _generated,
    {
        "details_text": details_text,
        "copy_timestamp": copy_timestamp,
        "_copy_escape": _copy_escape,
        "_SPECIAL_BUT_TAB": _COPY_SPECIAL_BUT_TAB,
    },
)
copy_fields.__doc__ = """The COPY text of the client's columns (which an event and its record share): the middle
of copy_line, which a request thread can write before the sequencer places the event. One scan in
the usual case of nothing to escape: no special character, and no tab but the separators."""
copy_line: Callable[..., str] = copy_fields.__globals__["copy_line"]
copy_line.__doc__ = """record as one line of COPY text format in COLUMNS order; recorded_at already formatted
(copy_timestamp; a batch shares it), fields copy_fields(record) if already made."""
