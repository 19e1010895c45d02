"""The streaming writers behind one interface: write events one at a time, then finish the file.

A writer holds at most one row in memory (the XLSX writer spools sheets to temporary files, as
openpyxl's write-only mode does), so an export's memory does not grow with its size.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from auditlog.domain.canonical import format_timestamp
from auditlog.domain.event import EventRecord

# Data rows per sheet: Excel's limit (1,048,576 rows) less the header row.
XLSX_MAX_DATA_ROWS = 1_048_575


@dataclass(frozen=True)
class ExportMetadata:
    """What an export file says about itself; known before the first row is written."""

    job_id: uuid.UUID
    job_name: str
    export_format: str
    requested_by: str
    created_at: datetime
    filters: dict[str, str]
    max_sequence: int
    row_count: int
    first_sequence: int | None
    last_sequence: int | None
    last_chain_hash: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "job_id": str(self.job_id),
            "job_name": self.job_name,
            "export_format": self.export_format,
            "requested_by": self.requested_by,
            "created_at": format_timestamp(self.created_at),
            "filters": self.filters,
            "max_sequence": self.max_sequence,
            "row_count": self.row_count,
            "first_sequence": self.first_sequence,
            "last_sequence": self.last_sequence,
            "last_chain_hash": self.last_chain_hash,
        }


class ExportWriter(Protocol):
    def write(self, record: EventRecord) -> None:
        """Appends one event."""

    def finish(self) -> None:
        """Completes the file; nothing may be written after."""

    def close(self) -> None:
        """Releases open files; safe after finish() and after a failure."""


def open_writer(
    export_format: str, path: Path, metadata: ExportMetadata, *, sheet_row_limit: int = XLSX_MAX_DATA_ROWS
) -> ExportWriter:
    """A writer of export_format creating the file at path."""
    # Imported here so each format's module loads only when used (openpyxl is not small).
    if export_format == "csv":
        from auditlog.export.csv_writer import CsvExportWriter

        return CsvExportWriter(path)
    if export_format == "json":
        from auditlog.export.json_writer import JsonExportWriter

        return JsonExportWriter(path, metadata)
    if export_format == "xlsx":
        from auditlog.export.xlsx_writer import XlsxExportWriter

        return XlsxExportWriter(path, metadata, sheet_row_limit=sheet_row_limit)
    raise ValueError(f"unknown export format {export_format!r}")
