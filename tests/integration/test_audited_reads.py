"""Audited reads: with a principal bound, every read RPC appends an audit.log.read event (who, which
RPC, filters, rows), batched; none with auth off or AUDITLOG_AUDIT_READS=off; none lost on a clean
shutdown."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import grpc
import psycopg

from audit.v1 import audit_service_pb2 as pb
from audit.v1 import audit_service_pb2_grpc, event_pb2, export_service_pb2
from auditlog.app import Service
from tests.fix_export import export_stub, wait_for_job
from tests.fix_principal import as_principal

AUDITOR = as_principal("auditor", "key:aud")


def _read_events(database_url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT user_id, action, recorded_by, resource_type, details FROM audit_events"
            " WHERE event_type = 'audit.log.read' ORDER BY sequence"
        ).fetchall()


def _wait_for_reads(database_url: str, count: int) -> list[tuple[Any, ...]]:
    deadline = time.monotonic() + 10
    while len(rows := _read_events(database_url)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return rows


def _write(stub: audit_service_pb2_grpc.AuditServiceStub, count: int) -> list[event_pb2.AuditEvent]:
    events = [
        event_pb2.EventInput(event_type="doc.edit", action="edit", user_id=f"u{i % 2}") for i in range(count)
    ]
    return list(stub.AppendEvents(pb.AppendEventsRequest(events=events), timeout=10).events)


def test_every_read_rpc_appends_who_read_what_and_how_many_rows(
    principal_service_factory: Callable[..., Service], database_url: str
) -> None:
    service = principal_service_factory()
    with grpc.insecure_channel(f"127.0.0.1:{service.port}") as channel:
        stub = audit_service_pb2_grpc.AuditServiceStub(channel)
        written = _write(stub, 5)
        stub.GetEvent(pb.GetEventRequest(id=written[0].id), metadata=AUDITOR)
        stub.ListEvents(pb.ListEventsRequest(user_id="u0", page_size=10), metadata=AUDITOR)
        list(stub.SearchEvents(pb.SearchEventsRequest(user_id="u1"), metadata=AUDITOR))
        exports = export_stub(channel)
        request = export_service_pb2.CreateExportRequest(
            export=export_service_pb2.ExportSpec(
                job_name="j", export_format="csv", filters=event_pb2.EventFilter(event_type="doc.edit")
            )
        )
        job = exports.CreateExport(request, metadata=AUDITOR)
        job = wait_for_job(channel, job.id)
        exports.GetExportDownload(export_service_pb2.GetExportDownloadRequest(id=job.id), metadata=AUDITOR)
        list(
            exports.DownloadExportContent(
                export_service_pb2.DownloadExportContentRequest(id=job.id), metadata=AUDITOR
            )
        )
        rows = _wait_for_reads(database_url, 6)
        assert stub.VerifyChain(pb.VerifyChainRequest(verify_all=True)).valid
    found = [
        (user, action, by, kind, json.loads(d) if isinstance(d, str) else d)
        for user, action, by, kind, d in rows
    ]
    doc_edit = {"event_type": "doc.edit"}
    assert found == [
        ("key:aud", "GetEvent", "key:aud", "audit_log", {"rows": 1, "id": written[0].id}),
        (
            "key:aud",
            "ListEvents",
            "key:aud",
            "audit_log",
            {"rows": 3, "filters": {"user_id": "u0"}, "page": 1, "page_size": 10},
        ),
        ("key:aud", "SearchEvents", "key:aud", "audit_log", {"rows": 2, "filters": {"user_id": "u1"}}),
        (
            "key:aud",
            "CreateExport",
            "key:aud",
            "audit_log",
            {"rows": 0, "filters": doc_edit, "job_id": job.id, "export_format": "csv"},
        ),
        (
            "key:aud",
            "GetExportDownload",
            "key:aud",
            "audit_log",
            {"rows": 5, "filters": doc_edit, "job_id": job.id},
        ),
        (
            "key:aud",
            "DownloadExportContent",
            "key:aud",
            "audit_log",
            {"rows": 5, "filters": doc_edit, "job_id": job.id},
        ),
    ]


def test_reads_are_not_audited_without_a_principal_or_when_turned_off(
    principal_service_factory: Callable[..., Service], database_url: str
) -> None:
    for service, metadata in (
        (principal_service_factory(), None),
        (principal_service_factory(audit_reads=False), AUDITOR),
    ):
        with grpc.insecure_channel(f"127.0.0.1:{service.port}") as channel:
            stub = audit_service_pb2_grpc.AuditServiceStub(channel)
            written = _write(stub, 2)
            stub.GetEvent(pb.GetEventRequest(id=written[0].id), metadata=metadata)
            stub.ListEvents(pb.ListEventsRequest(), metadata=metadata)
            list(stub.SearchEvents(pb.SearchEventsRequest(), metadata=metadata))
        service.stop(grace=2)  # flushes anything queued
    assert _read_events(database_url) == []


def test_a_clean_shutdown_appends_every_queued_read(
    principal_service_factory: Callable[..., Service], database_url: str
) -> None:
    service = principal_service_factory()
    assert service.reads is not None
    # Only the drain path may flush from now on: the batcher's next wake is an hour away.
    service.reads._flush_seconds = 3600
    time.sleep(0.4)
    with grpc.insecure_channel(f"127.0.0.1:{service.port}") as channel:
        stub = audit_service_pb2_grpc.AuditServiceStub(channel)
        (event,) = _write(stub, 1)
        for _ in range(25):
            stub.GetEvent(pb.GetEventRequest(id=event.id), metadata=AUDITOR)
    assert _read_events(database_url) == []  # still queued
    service.stop(grace=2)
    rows = _read_events(database_url)
    assert len(rows) == 25 and {row[1] for row in rows} == {"GetEvent"}
