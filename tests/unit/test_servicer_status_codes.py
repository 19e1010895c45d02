"""Every status-code path of AuditService, ExportService and HealthService, in process
(grpc_testing) over the in-memory storage: no database."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest

from audit.v1 import audit_service_pb2 as pb
from audit.v1 import event_pb2, export_service_pb2, health_service_pb2
from auditlog.api.audit_servicer import AuditServicer
from auditlog.api.export_servicer import ExportServicer
from auditlog.api.health import HealthServicer
from auditlog.api.limits import StreamLimiter
from auditlog.domain.page_token import PageTokenCodec
from auditlog.export.local_storage import LocalStorage
from auditlog.export.runner import ExportRunner
from auditlog.export.setup import Exports
from auditlog.sequencer import Sequencer
from auditlog.storage.memory import MemoryJobs, MemoryLog
from tests.fix_servicers import fields_of, stream, unary

AUDIT = pb.DESCRIPTOR.services_by_name["AuditService"]
EXPORT = export_service_pb2.DESCRIPTOR.services_by_name["ExportService"]
HEALTH = health_service_pb2.DESCRIPTOR.services_by_name["HealthService"]
TOKENS = PageTokenCodec(bytes(32))
NOW = datetime(2024, 5, 1, 12, tzinfo=UTC)


def clock() -> datetime:
    return NOW


@pytest.fixture
def log() -> MemoryLog:
    return MemoryLog()


@pytest.fixture
def sequencer(log: MemoryLog) -> Iterator[Sequencer]:
    seq = Sequencer(log, clock=clock)
    seq.start()
    yield seq
    seq.stop()


@pytest.fixture
def audit(log: MemoryLog, sequencer: Sequencer) -> AuditServicer:
    return AuditServicer(log, sequencer, clock, log, TOKENS)


@pytest.fixture
def jobs() -> MemoryJobs:
    return MemoryJobs()


@pytest.fixture
def exports(log: MemoryLog, jobs: MemoryJobs, tmp_path: Path) -> ExportServicer:
    local = LocalStorage(tmp_path, "http://localhost:8000")
    runner = ExportRunner(jobs, log, local, tmp_path / ".spool", clock=clock)
    return ExportServicer(
        Exports(jobs, runner, local, local, None),
        log,
        clock,
        TOKENS,
        streams=StreamLimiter(4, 30),
        max_jobs=1,
    )


def event(action: str = "x", **fields: Any) -> event_pb2.EventInput:
    return event_pb2.EventInput(event_type="a.b", action=action, **fields)


def test_create_get_and_idempotent_retry(audit: AuditServicer) -> None:
    first, code, _, _ = unary(
        audit, AUDIT, "CreateEvent", pb.CreateEventRequest(event=event(request_id="r1"))
    )
    assert code == grpc.StatusCode.OK and first.sequence == 0
    again, code, _, _ = unary(
        audit, AUDIT, "CreateEvent", pb.CreateEventRequest(event=event(request_id="r1"))
    )
    assert code == grpc.StatusCode.OK and again.id == first.id
    got, code, _, _ = unary(audit, AUDIT, "GetEvent", pb.GetEventRequest(id=first.id))
    assert code == grpc.StatusCode.OK and got.chain_hash == first.chain_hash


@pytest.mark.parametrize(
    ("method", "request_message", "field"),
    [
        ("CreateEvent", pb.CreateEventRequest(), "event"),
        ("CreateEvent", pb.CreateEventRequest(event=event_pb2.EventInput(action="x")), "event.event_type"),
        ("AppendEvents", pb.AppendEventsRequest(), "events"),
        ("GetEvent", pb.GetEventRequest(id="42"), "id"),
        ("ListEvents", pb.ListEventsRequest(order_by="name"), "order_by"),
        ("ListEvents", pb.ListEventsRequest(page_size=-1), "page_size"),
        ("ListEvents", pb.ListEventsRequest(page=1, page_token="x"), "page_token"),
        ("ListEvents", pb.ListEventsRequest(page_token="garbage"), "page_token"),
        ("VerifyChain", pb.VerifyChainRequest(verify_all=True, start_sequence=0), "verify_all"),
        ("VerifyChain", pb.VerifyChainRequest(start_sequence=5), "start_sequence"),
        ("VerifyChain", pb.VerifyChainRequest(start_sequence=2, end_sequence=1), "end_sequence"),
    ],
)
def test_audit_invalid_argument_names_the_field(
    audit: AuditServicer, method: str, request_message: Any, field: str
) -> None:
    _, code, details, _ = unary(audit, AUDIT, method, request_message)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert field in fields_of(details)
    assert details.startswith(f"invalid request: {field}: got ")


def test_search_invalid_argument_names_the_field(audit: AuditServicer) -> None:
    _, code, details, _ = stream(audit, AUDIT, "SearchEvents", pb.SearchEventsRequest(risk_level="x"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and fields_of(details) == ["risk_level"]


def test_get_event_not_found(audit: AuditServicer) -> None:
    _, code, details, _ = unary(audit, AUDIT, "GetEvent", pb.GetEventRequest(id=str(uuid.UUID(int=7))))
    assert code == grpc.StatusCode.NOT_FOUND and "00000000-0000-0000-0000-000000000007" in details


def test_list_search_verify_and_stats_ok(audit: AuditServicer) -> None:
    _, code, _, _ = unary(
        audit,
        AUDIT,
        "AppendEvents",
        pb.AppendEventsRequest(events=[event(str(i), user_id="u") for i in range(5)]),
    )
    assert code == grpc.StatusCode.OK
    page, code, _, _ = unary(
        audit, AUDIT, "ListEvents", pb.ListEventsRequest(page_size=2, order_by="sequence asc")
    )
    assert code == grpc.StatusCode.OK and [e.sequence for e in page.events] == [0, 1]
    rest, code, _, _ = unary(
        audit,
        AUDIT,
        "ListEvents",
        pb.ListEventsRequest(page_size=10, order_by="sequence asc", page_token=page.next_page_token),
    )
    assert code == grpc.StatusCode.OK and [e.sequence for e in rest.events] == [2, 3, 4]
    found, code, _, _ = stream(audit, AUDIT, "SearchEvents", pb.SearchEventsRequest(action="3"))
    assert code == grpc.StatusCode.OK and [e.action for m in found for e in m.events] == ["3"]
    verified, code, _, _ = unary(audit, AUDIT, "VerifyChain", pb.VerifyChainRequest())
    assert code == grpc.StatusCode.OK and verified.valid and verified.events_checked == 5
    stats, code, _, _ = unary(audit, AUDIT, "GetStats", pb.GetStatsRequest())
    assert code == grpc.StatusCode.OK and stats.total_events == 5 and stats.unique_users_last_24h == 1
    assert stats.last_verification.valid and stats.last_verification.events_checked == 5


def test_verify_finds_a_tampered_event(audit: AuditServicer, log: MemoryLog) -> None:
    unary(audit, AUDIT, "AppendEvents", pb.AppendEventsRequest(events=[event(str(i)) for i in range(3)]))
    from dataclasses import replace

    log.events[1] = replace(log.events[1], action="changed")
    verified, code, _, _ = unary(audit, AUDIT, "VerifyChain", pb.VerifyChainRequest())
    assert code == grpc.StatusCode.OK and not verified.valid and verified.first_bad_sequence == 1
    assert verified.break_kind == pb.BREAK_KIND_LEAF_HASH


def test_appends_stop_with_failed_precondition_when_the_tail_is_not_the_head(
    audit: AuditServicer, log: MemoryLog
) -> None:
    unary(audit, AUDIT, "AppendEvents", pb.AppendEventsRequest(events=[event(str(i)) for i in range(3)]))
    del log.events[-1]  # rows removed from the tail
    _, code, details, _ = unary(audit, AUDIT, "CreateEvent", pb.CreateEventRequest(event=event()))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert details.startswith("the log's stored tail does not match its head at sequence 2")


@pytest.mark.parametrize(
    ("method", "request_message"),
    [
        ("CreateEvent", pb.CreateEventRequest(event=event())),
        ("GetEvent", pb.GetEventRequest(id=str(uuid.UUID(int=7)))),
        ("ListEvents", pb.ListEventsRequest()),
        ("VerifyChain", pb.VerifyChainRequest()),
        ("GetStats", pb.GetStatsRequest()),
    ],
)
def test_audit_unavailable_when_the_storage_is_unreachable(
    audit: AuditServicer, log: MemoryLog, method: str, request_message: Any
) -> None:
    log.unavailable = True
    _, code, details, _ = unary(audit, AUDIT, method, request_message)
    assert code == grpc.StatusCode.UNAVAILABLE and "the database is unavailable" in details


def test_search_unavailable_and_stream_limit(audit: AuditServicer, log: MemoryLog) -> None:
    log.unavailable = True
    _, code, _, _ = stream(audit, AUDIT, "SearchEvents", pb.SearchEventsRequest())
    assert code == grpc.StatusCode.UNAVAILABLE


def test_unexpected_error_is_internal_with_only_a_request_id(log: MemoryLog, sequencer: Sequencer) -> None:
    secret = "SELECT * FROM audit_events -- /srv/auditlog/storage/events.py"

    def broken() -> datetime:
        raise RuntimeError(secret)

    servicer = AuditServicer(log, sequencer, broken, log, TOKENS)
    _, code, details, _ = unary(servicer, AUDIT, "GetStats", pb.GetStatsRequest())
    assert code == grpc.StatusCode.INTERNAL and details.startswith("internal error (request id ")
    for leak in ("SELECT", "/srv", ".py", "RuntimeError"):
        assert leak not in details


def spec(name: str = "j", export_format: str = "csv") -> export_service_pb2.CreateExportRequest:
    return export_service_pb2.CreateExportRequest(
        export=export_service_pb2.ExportSpec(job_name=name, export_format=export_format)
    )


def test_export_paths(exports: ExportServicer, jobs: MemoryJobs) -> None:
    job, code, _, _ = unary(exports, EXPORT, "CreateExport", spec())
    assert code == grpc.StatusCode.OK and job.status == "pending"
    _, code, details, _ = unary(exports, EXPORT, "CreateExport", spec("k"))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and details.startswith("too many export jobs")
    got, code, _, _ = unary(exports, EXPORT, "GetExport", export_service_pb2.GetExportRequest(id=job.id))
    assert code == grpc.StatusCode.OK and got.job_name == "j"
    listed, code, _, _ = unary(exports, EXPORT, "ListExports", export_service_pb2.ListExportsRequest())
    assert code == grpc.StatusCode.OK and [j.id for j in listed.exports] == [job.id]
    _, code, details, _ = unary(
        exports, EXPORT, "GetExportDownload", export_service_pb2.GetExportDownloadRequest(id=job.id)
    )
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "is pending" in details
    _, code, _, _ = stream(
        exports, EXPORT, "DownloadExportContent", export_service_pb2.DownloadExportContentRequest(id=job.id)
    )
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    missing = str(uuid.UUID(int=9))
    _, code, _, _ = unary(exports, EXPORT, "GetExport", export_service_pb2.GetExportRequest(id=missing))
    assert code == grpc.StatusCode.NOT_FOUND
    formats, code, _, _ = unary(
        exports, EXPORT, "ListExportFormats", export_service_pb2.ListExportFormatsRequest()
    )
    assert code == grpc.StatusCode.OK and "csv" in [f.name for f in formats.formats]
    jobs.unavailable = True
    _, code, _, _ = unary(exports, EXPORT, "GetExport", export_service_pb2.GetExportRequest(id=job.id))
    assert code == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize(
    ("method", "request_message", "field"),
    [
        ("CreateExport", export_service_pb2.CreateExportRequest(), "export"),
        ("CreateExport", spec(export_format="pdf"), "export.export_format"),
        ("CreateExport", spec(name=" "), "export.job_name"),
        ("GetExport", export_service_pb2.GetExportRequest(id="1"), "id"),
        ("ListExports", export_service_pb2.ListExportsRequest(page_size=-1), "page_size"),
        ("ListExports", export_service_pb2.ListExportsRequest(page_token="x"), "page_token"),
    ],
)
def test_export_invalid_argument_names_the_field(
    exports: ExportServicer, method: str, request_message: Any, field: str
) -> None:
    _, code, details, _ = unary(exports, EXPORT, method, request_message)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and field in fields_of(details)


def test_health_paths(log: MemoryLog) -> None:
    shutting_down = threading.Event()
    problem: list[str | None] = [None]
    servicer = HealthServicer(log.ping, shutting_down, lambda: problem[0])
    for method, request in (
        ("Check", health_service_pb2.CheckRequest()),
        ("Live", health_service_pb2.LiveRequest()),
    ):
        _, code, _, _ = unary(servicer, HEALTH, method, request)
        assert code == grpc.StatusCode.OK
    ready, code, _, _ = unary(servicer, HEALTH, "Ready", health_service_pb2.ReadyRequest())
    assert code == grpc.StatusCode.OK and ready.database == "ok"
    problem[0] = "appends are stopped"
    _, code, details, _ = unary(servicer, HEALTH, "Ready", health_service_pb2.ReadyRequest())
    assert code == grpc.StatusCode.UNAVAILABLE and details == "not ready: appends are stopped"
    log.unavailable = True
    _, code, details, _ = unary(servicer, HEALTH, "Ready", health_service_pb2.ReadyRequest())
    assert code == grpc.StatusCode.UNAVAILABLE and details == "not ready: the database is unreachable"
    shutting_down.set()
    _, code, _, _ = unary(servicer, HEALTH, "Live", health_service_pb2.LiveRequest())
    assert code == grpc.StatusCode.UNAVAILABLE
