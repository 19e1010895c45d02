"""The streaming writers behind one interface: write events one at a time, then finish the file.

A writer holds at most one row in memory (the XLSX writer spools sheets to temporary files, as
openpyxl's write-only mode does), so an export's memory does not grow with its size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from auditlog.domain.event import EventRecord
from auditlog.export.evidence import Prover
from auditlog.export.metadata import XLSX_MAX_DATA_ROWS, ExportMetadata
from auditlog.storage.postgres.tree import StoredCheckpoint

__all__ = ["XLSX_MAX_DATA_ROWS", "ExportMetadata", "ExportWriter", "open_writer"]


class ExportWriter(Protocol):
    def write(self, record: EventRecord) -> None:
        """Appends one event."""

    def finish(self) -> None:
        """Completes the file; nothing may be written after."""

    def close(self) -> None:
        """Releases open files; safe after finish() and after a failure."""


def open_writer(
    export_format: str,
    path: Path,
    metadata: ExportMetadata,
    *,
    sheet_row_limit: int = XLSX_MAX_DATA_ROWS,
    origin: str = "auditlog",
    evidence: tuple[StoredCheckpoint, Prover] | None = None,
) -> ExportWriter:
    """A writer of export_format creating the file at path; origin names the log in OCSF records;
    evidence (the checkpoint and a prover) goes into JSON exports."""
    # Imported here so each format's module loads only when used (openpyxl is not small).
    if export_format == "csv":
        from auditlog.export.csv_writer import CsvExportWriter

        return CsvExportWriter(path)
    if export_format == "json":
        from auditlog.export.json_writer import JsonExportWriter

        return JsonExportWriter(path, metadata, evidence)
    if export_format == "xlsx":
        from auditlog.export.xlsx_writer import XlsxExportWriter

        return XlsxExportWriter(path, metadata, sheet_row_limit=sheet_row_limit)
    if export_format in ("ndjson", "ocsf"):
        from auditlog.export.ndjson_writer import NdjsonExportWriter, ocsf_writer

        return NdjsonExportWriter(path) if export_format == "ndjson" else ocsf_writer(path, origin)
    raise ValueError(f"unknown export format {export_format!r}")
