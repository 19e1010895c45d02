"""CSV export: RFC 4180 (comma, double quotes, CRLF), UTF-8 without BOM, a header row.

Spreadsheets execute a cell whose text starts with `=`, `+`, `-` or `@` (and treat a leading tab or
carriage return the same way), which lets an audited user plant a formula in an auditor's
spreadsheet (OWASP "CSV Injection"). Every such cell is prefixed with an apostrophe, which
spreadsheets show as text. A value that itself starts with an apostrophe gets one too, so the rule
stays reversible: to get the original value back, drop one leading apostrophe from any cell that
starts with one.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import IO

from auditlog.domain.canonical import format_timestamp
from auditlog.domain.event import EventRecord
from auditlog.domain.schema import Kind
from auditlog.export.fields import TABLE_COLUMNS, table_values

# OWASP's list, the full-width forms some spreadsheet locales also read as formula starts, and the
# apostrophe itself (for reversibility, see above).
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20", "'")


def neutralise(value: str) -> str:
    """The cell text for value: prefixed with an apostrophe when a spreadsheet could execute it."""
    return "'" + value if value.startswith(FORMULA_TRIGGERS) else value


def restore(cell: str) -> str:
    """The inverse of neutralise (for readers of the file and for tests)."""
    return cell[1:] if cell.startswith("'") else cell


def csv_row(record: EventRecord) -> list[str | int]:
    row: list[str | int] = []
    for field, value in table_values(record):
        if field.kind is Kind.TIMESTAMP:
            row.append("" if value is None else format_timestamp(value))
        elif field.kind in (Kind.TEXT, Kind.JSON):
            row.append(neutralise(value))  # what a client wrote
        else:
            row.append(value)
    return row


class CsvExportWriter:
    def __init__(self, path: Path) -> None:
        # newline="" hands line endings to the csv module, which writes RFC 4180's CRLF.
        self._file: IO[str] = path.open("w", encoding="utf-8", newline="")
        self._csv = csv.writer(self._file, dialect="excel", lineterminator="\r\n")
        self._csv.writerow(TABLE_COLUMNS)

    def write(self, record: EventRecord) -> None:
        self._csv.writerow(csv_row(record))

    def finish(self) -> None:
        self._file.close()

    def close(self) -> None:
        self._file.close()
