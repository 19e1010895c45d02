"""What one event becomes in an export: a table row (CSV, XLSX) or a JSON object (JSON).

The JSON object holds exactly the values the canonical form hashes (docs/integrity.md),
plus the hashes, so a reader can recompute leaf and chain hashes from the file alone.
"""

from __future__ import annotations

import json
from typing import Any

from auditlog.domain.canonical import format_timestamp
from auditlog.domain.event import EventRecord
from auditlog.domain.schema import FIELDS, NAMES, TABLE_FIELDS, Field, Kind, optional, values_by_kind

# Column order of the tabular formats (schema.TABLE_FIELDS): position and time first, then the
# client's fields, then the hashes that tie each row to the chain.
TABLE_COLUMNS = tuple(f.name for f in TABLE_FIELDS)


def details_json(details: dict[str, Any]) -> str:
    """Compact JSON, non-ASCII kept as is (the files are UTF-8)."""
    return json.dumps(details, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


_object_values = values_by_kind(
    "_object_values",
    FIELDS,
    {Kind.UUID: str, Kind.TIMESTAMP: optional(format_timestamp), Kind.HASH: bytes.hex},
)
_table_values = values_by_kind(
    "_table_values", TABLE_FIELDS, {Kind.UUID: str, Kind.JSON: details_json, Kind.HASH: bytes.hex}
)


def event_object(record: EventRecord) -> dict[str, Any]:
    """The JSON export's object for one event: every canonical field as hashed, plus the hashes."""
    return dict(zip(NAMES, _object_values(record), strict=True))


def table_values(record: EventRecord) -> list[tuple[Field, Any]]:
    """The record's fields in TABLE_COLUMNS order, each with its value (details as JSON text, hashes
    as hex; the id, sequence and timestamps as they are, for each format to write)."""
    return list(zip(TABLE_FIELDS, _table_values(record), strict=True))
