"""What one event becomes in an export: a table row (CSV, XLSX) or a JSON object (JSON).

The JSON object holds exactly the values the canonical form hashes (docs/integrity.md),
plus the hashes, so a reader can recompute leaf and chain hashes from the file alone.
"""

from __future__ import annotations

import json
from typing import Any

from auditlog.domain.canonical import format_timestamp
from auditlog.domain.event import EventRecord
from auditlog.domain.schema import FIELDS, TABLE_FIELDS, Field, Kind

# Column order of the tabular formats (schema.TABLE_FIELDS): position and time first, then the
# client's fields, then the hashes that tie each row to the chain.
TABLE_COLUMNS = tuple(f.name for f in TABLE_FIELDS)


def details_json(details: dict[str, Any]) -> str:
    """Compact JSON, non-ASCII kept as is (the files are UTF-8)."""
    return json.dumps(details, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def event_object(record: EventRecord) -> dict[str, Any]:
    """The JSON export's object for one event: every canonical field as hashed, plus the hashes."""
    return {f.name: _json_value(f, getattr(record, f.name)) for f in FIELDS}


def _json_value(field: Field, value: Any) -> Any:
    if field.kind is Kind.UUID:
        return str(value)
    if field.kind is Kind.TIMESTAMP:
        return None if value is None else format_timestamp(value)
    if field.kind is Kind.HASH:
        return value.hex()
    return value


def table_values(record: EventRecord) -> list[tuple[Field, Any]]:
    """The record's fields in TABLE_COLUMNS order, each with its value (details as JSON text, hashes
    as hex; the id, sequence and timestamps as they are, for each format to write)."""
    values: list[tuple[Field, Any]] = []
    for field in TABLE_FIELDS:
        value = getattr(record, field.name)
        if field.kind is Kind.UUID:
            value = str(value)
        elif field.kind is Kind.JSON:
            value = details_json(value)
        elif field.kind is Kind.HASH:
            value = value.hex()
        values.append((field, value))
    return values
