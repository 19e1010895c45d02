"""The export writers on their own: CSV neutralisation, file names, XLSX sheets and cells."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import openpyxl
from hypothesis import given
from hypothesis import strategies as st

from auditlog.domain.canonical import ZERO_HASH
from auditlog.domain.chain import build_record
from auditlog.domain.event import EventRecord, NewEvent
from auditlog.export.csv_writer import CsvExportWriter, neutralise, restore
from auditlog.export.formats import FORMATS, file_name_for
from auditlog.export.writers import XLSX_MAX_DATA_ROWS, ExportMetadata, open_writer
from auditlog.export.xlsx_writer import MAX_CELL_CHARS

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def records(count: int, **fields: str) -> list[EventRecord]:
    out: list[EventRecord] = []
    prev = ZERO_HASH
    for i in range(count):
        event = NewEvent(
            event_type=fields.get("event_type", "user.login"), action=fields.get("action", f"a{i}")
        )
        record = build_record(
            event, sequence=i, recorded_at=T0 + timedelta(seconds=i), prev=prev, event_id=uuid.uuid4()
        )
        out.append(record)
        prev = record.chain_hash
    return out


def metadata(export_format: str, rows: list[EventRecord]) -> ExportMetadata:
    return ExportMetadata(
        job_id=uuid.uuid4(),
        job_name="Unit",
        export_format=export_format,
        requested_by="tester",
        created_at=T0,
        filters={},
        max_sequence=len(rows) - 1,
        row_count=len(rows),
        first_sequence=rows[0].sequence if rows else None,
        last_sequence=rows[-1].sequence if rows else None,
        last_chain_hash=rows[-1].chain_hash.hex() if rows else None,
    )


def write(
    export_format: str, path: Path, rows: list[EventRecord], sheet_row_limit: int = XLSX_MAX_DATA_ROWS
) -> None:
    writer = open_writer(export_format, path, metadata(export_format, rows), sheet_row_limit=sheet_row_limit)
    for record in rows:
        writer.write(record)
    writer.finish()
    writer.close()


def test_cells_a_spreadsheet_would_execute_get_an_apostrophe() -> None:
    for value in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx", "\uff1d1", "'x"):
        assert neutralise(value) == "'" + value
    for value in ("", "plain", "1-2", "a=b", " =x"):
        assert neutralise(value) == value


@given(st.text())
def test_neutralisation_is_reversible(value: str) -> None:
    assert restore(neutralise(value)) == value


def test_neutralised_cell_never_starts_with_a_formula_trigger(tmp_path: Path) -> None:
    rows = records(3, action="=cmd|' /C calc'!A0")
    write("csv", tmp_path / "x.csv", rows)
    with (tmp_path / "x.csv").open(newline="", encoding="utf-8") as handle:
        table = list(csv.DictReader(handle))
    assert [r["action"] for r in table] == ["'=cmd|' /C calc'!A0"] * 3


def test_csv_uses_crlf_line_endings(tmp_path: Path) -> None:
    write("csv", tmp_path / "x.csv", records(2))
    raw = (tmp_path / "x.csv").read_bytes()
    assert raw.count(b"\r\n") == 3 and b"\n" not in raw.replace(b"\r\n", b"")


def test_csv_writer_header_names_every_column(tmp_path: Path) -> None:
    writer = CsvExportWriter(tmp_path / "empty.csv")
    writer.finish()
    header = next(csv.reader(io.StringIO((tmp_path / "empty.csv").read_text(encoding="utf-8"))))
    assert header[:3] == ["sequence", "id", "recorded_at"] and header[-3:] == [
        "leaf_hash",
        "prev_hash",
        "chain_hash",
    ]


def test_file_names_are_ascii_slugs_with_the_format_extension() -> None:
    assert file_name_for("Monthly Audit Report", FORMATS["xlsx"]) == "monthly-audit-report.xlsx"
    assert file_name_for("Zoë / Q1 ../../etc", FORMATS["csv"]) == "zo-q1-etc.csv"
    assert file_name_for("日本語", FORMATS["json"]) == "export.json"


def test_xlsx_rows_continue_on_new_sheets_past_the_row_limit(tmp_path: Path) -> None:
    rows = records(10)
    write("xlsx", tmp_path / "x.xlsx", rows, sheet_row_limit=4)
    book = openpyxl.load_workbook(tmp_path / "x.xlsx")
    assert book.sheetnames == ["Events", "Events 2", "Events 3", "Export"]
    sequences: list[int] = []
    for name in ("Events", "Events 2", "Events 3"):
        sheet = book[name]
        values = list(sheet.iter_rows(values_only=True))
        assert values[0][0] == "sequence"  # every sheet has the header
        assert sheet.freeze_panes == "A2"
        assert sheet["A1"].font.bold
        sequences.extend(row[0] for row in values[1:])
    assert [len(list(book[n].iter_rows())) - 1 for n in ("Events", "Events 2", "Events 3")] == [4, 4, 2]
    assert sequences == list(range(10))


def test_xlsx_formula_like_text_stays_text(tmp_path: Path) -> None:
    write("xlsx", tmp_path / "x.xlsx", records(1, action="=1+1", event_type="#N/A"))
    sheet = openpyxl.load_workbook(tmp_path / "x.xlsx")["Events"]
    header = [c.value for c in sheet[1]]
    action = sheet.cell(row=2, column=header.index("action") + 1)
    event_type = sheet.cell(row=2, column=header.index("event_type") + 1)
    assert (action.value, action.data_type) == ("=1+1", "s")
    assert (event_type.value, event_type.data_type) == ("#N/A", "s")


def test_xlsx_timestamps_are_date_cells(tmp_path: Path) -> None:
    write("xlsx", tmp_path / "x.xlsx", records(1))
    sheet = openpyxl.load_workbook(tmp_path / "x.xlsx")["Events"]
    cell = sheet["C2"]
    assert sheet["C1"].value == "recorded_at (UTC)"
    assert cell.is_date and cell.value == T0.replace(tzinfo=None)


def test_xlsx_truncates_cells_beyond_excels_limit(tmp_path: Path) -> None:
    event = NewEvent(event_type="big", action="a", details={"blob": "x" * 40_000})
    record = build_record(event, sequence=0, recorded_at=T0, prev=ZERO_HASH, event_id=uuid.uuid4())
    write("xlsx", tmp_path / "x.xlsx", [record])
    sheet = openpyxl.load_workbook(tmp_path / "x.xlsx")["Events"]
    header = [c.value for c in sheet[1]]
    details = sheet.cell(row=2, column=header.index("details") + 1).value
    assert len(details) == MAX_CELL_CHARS and details.endswith("see the JSON export]")


def test_empty_exports_are_valid_files(tmp_path: Path) -> None:
    for name in FORMATS:
        write(name, tmp_path / f"empty{FORMATS[name].file_extension}", [])
    assert (tmp_path / "empty.json").read_text(encoding="utf-8").endswith('"events":[\n]}\n')
    assert openpyxl.load_workbook(tmp_path / "empty.xlsx")["Events"].max_row == 1
