"""XLSX export with openpyxl's write-only mode: rows stream to temporary files, one per sheet.

Each sheet has a bold, frozen header row. Timestamps are real date cells in UTC (Excel has no time
zones; the header says UTC) shown to the millisecond, which is Excel's precision; the exact
microsecond values and the hashes are in the CSV and JSON exports. Past `sheet_row_limit` data rows
the rows continue on a new sheet ("Events 2", ...). A last sheet, "Export", holds the metadata.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ERROR_CODES
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from auditlog.domain.event import EventRecord
from auditlog.domain.schema import TABLE_FIELDS, Kind
from auditlog.export.fields import TABLE_COLUMNS, table_values
from auditlog.export.metadata import XLSX_MAX_DATA_ROWS, ExportMetadata

DATE_FORMAT = "yyyy-mm-dd hh:mm:ss.000"
# Excel's maximum characters in one cell.
MAX_CELL_CHARS = 32_767
TRUNCATED = " [truncated: Excel cells hold at most 32,767 characters; see the JSON export]"
# Characters XML 1.0 cannot carry (openpyxl refuses them); validation keeps them out of text fields,
# this guards the rest.
_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_HEADERS = [f"{f.name} (UTC)" if f.kind is Kind.TIMESTAMP else f.name for f in TABLE_FIELDS]
_WIDTHS = {"sequence": 10, "id": 38, "recorded_at": 24, "occurred_at": 24, "details": 60, "user_agent": 40}


def _naive_utc(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None)


class XlsxExportWriter:
    def __init__(
        self, path: Path, metadata: ExportMetadata, *, sheet_row_limit: int = XLSX_MAX_DATA_ROWS
    ) -> None:
        if not 1 <= sheet_row_limit <= XLSX_MAX_DATA_ROWS:
            raise ValueError(f"sheet_row_limit: got {sheet_row_limit}, want 1 to {XLSX_MAX_DATA_ROWS}")
        self._path = path
        self._metadata = metadata
        self._limit = sheet_row_limit
        self._workbook = Workbook(write_only=True)
        self._sheets = 0
        self._rows_on_sheet = 0
        self._sheet: Any = None
        self._finished = False
        self._new_sheet()  # an empty export still has its header

    def _new_sheet(self) -> None:
        self._sheets += 1
        sheet = self._workbook.create_sheet("Events" if self._sheets == 1 else f"Events {self._sheets}")
        sheet.freeze_panes = "A2"
        # Write-only sheets take column settings only before the first row.
        for index, name in enumerate(TABLE_COLUMNS, start=1):
            sheet.column_dimensions[get_column_letter(index)].width = _WIDTHS.get(name, 18)
        bold = Font(bold=True)
        header = []
        for title in _HEADERS:
            cell = WriteOnlyCell(sheet, title)
            cell.font = bold
            header.append(cell)
        sheet.append(header)
        self._sheet = sheet
        self._rows_on_sheet = 0

    def _date(self, value: datetime | None) -> Any:
        if value is None:
            return None
        cell = WriteOnlyCell(self._sheet, _naive_utc(value))
        cell.number_format = DATE_FORMAT
        return cell

    def _text(self, value: str) -> Any:
        if _ILLEGAL.search(value):
            value = _ILLEGAL.sub("\ufffd", value)
        if len(value) > MAX_CELL_CHARS:
            value = value[: MAX_CELL_CHARS - len(TRUNCATED)] + TRUNCATED
        if value.startswith("=") or value in ERROR_CODES:
            # openpyxl would store these as a formula or an error value; force a text cell.
            cell = WriteOnlyCell(self._sheet, value)
            cell.data_type = "s"
            return cell
        return value

    def write(self, record: EventRecord) -> None:
        if self._rows_on_sheet >= self._limit:
            self._new_sheet()
        row = []
        for field, value in table_values(record):
            if field.kind is Kind.TIMESTAMP:
                row.append(self._date(value))
            elif field.kind in (Kind.TEXT, Kind.JSON):
                row.append(self._text(value))
            else:
                row.append(value)
        self._sheet.append(row)
        self._rows_on_sheet += 1

    def _write_metadata_sheet(self) -> None:
        sheet = self._workbook.create_sheet("Export")
        sheet.column_dimensions["A"].width = 18
        sheet.column_dimensions["B"].width = 70
        for key, value in self._metadata.as_dict().items():
            if isinstance(value, dict):
                value = ", ".join(f"{k}={v}" for k, v in value.items())
            sheet.append([key, self._text(value) if isinstance(value, str) else value])

    def finish(self) -> None:
        self._write_metadata_sheet()
        self._workbook.save(self._path)  # closes every sheet and removes their temporary files
        self._finished = True

    def close(self) -> None:
        if self._finished:
            return
        self._finished = True
        # An abandoned export: end each sheet's row stream while its temporary file is still open
        # (otherwise the garbage collector does it later, on a closed file), then delete the file.
        for sheet in self._workbook.worksheets:
            if not sheet.closed:
                sheet.close()
                sheet._writer.cleanup()
