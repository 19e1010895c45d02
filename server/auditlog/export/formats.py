"""The export formats and the file names of exports."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class ExportFormat:
    name: str
    content_type: str
    file_extension: str
    description: str


FORMATS: dict[str, ExportFormat] = {
    f.name: f
    for f in (
        ExportFormat(
            "csv",
            "text/csv; charset=utf-8",
            ".csv",
            "RFC 4180 CSV, UTF-8, a header row and one event per row; details as compact JSON; cells a "
            "spreadsheet would execute are prefixed with an apostrophe.",
        ),
        ExportFormat(
            "json",
            "application/json",
            ".json",
            "One JSON document: metadata (job, filters, row count, sequence range, last chain hash) and "
            "every event with all fields and hashes, so the hashes can be recomputed from the file.",
        ),
        ExportFormat(
            "xlsx",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            ".xlsx",
            "Excel workbook: a frozen header row, date cells for timestamps (UTC), rows continuing on "
            "further sheets past the sheet row limit.",
        ),
        ExportFormat(
            "ndjson",
            "application/x-ndjson",
            ".ndjson",
            "Newline-delimited JSON for SIEMs: one event per line, with the JSON export's fields and "
            "hashes (no metadata lines).",
        ),
        ExportFormat(
            "ocsf",
            "application/x-ndjson",
            ".ocsf.ndjson",
            "OCSF 1.3.0 events, one per line (Authentication, Account Change or API Activity by "
            "event_type), carrying sequence, hashes and the log origin; mapping in docs/siem.md.",
        ),
    )
}

_NOT_SLUG = re.compile(r"[^a-z0-9]+")
MAX_STEM = 80


def file_name_for(job_name: str, export_format: ExportFormat) -> str:
    """'Monthly Audit Report' -> 'monthly-audit-report.xlsx': ASCII only, so the name needs no
    escaping in a Content-Disposition header, an S3 key or a file system."""
    stem = _NOT_SLUG.sub("-", job_name.lower()).strip("-")[:MAX_STEM].strip("-")
    return f"{stem or 'export'}{export_format.file_extension}"
