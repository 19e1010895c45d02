"""OpenTelemetry traces: a CreateEvent gives the gRPC server span, the sequencer batch's span linked
to it and the database transaction's span inside the batch; without an OTLP endpoint nothing of
OpenTelemetry is even imported."""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.context import Context
from opentelemetry.sdk.trace import Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from auditlog import tracing
from auditlog.app import create_service
from auditlog_client import AuditClient
from auditlog_client.client import event_input
from auditlog_client.errors import NotFound
from tests.fix_db import login_url
from tests.fix_server import server_config, stop_service


class ThreadNames(SpanProcessor):
    """Records on each span the thread that started it."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        span.set_attribute("test.thread", threading.current_thread().name)


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(ThreadNames())
    provider.add_span_processor(SimpleSpanProcessor(spans))
    tracing.install(provider)
    try:
        yield spans
    finally:
        tracing.install(None)
        provider.shutdown()


def test_create_event_traces_the_call_its_batch_and_transaction(
    exporter: InMemorySpanExporter, database_url: str, test_login: str, tmp_path: Path
) -> None:
    service = create_service(
        server_config(tmp_path), database_url=login_url(database_url, test_login), migration_url=database_url
    )
    try:
        with AuditClient(f"127.0.0.1:{service.port}") as client:
            client.create_event(event_type="trace.test", action="create")
            # AppendEvents runs on its own thread pool, which tracing must not take away.
            assert len(client.append_events([event_input(event_type="trace.test", action="append")] * 3)) == 3
            # Errors keep their status while traced.
            with pytest.raises(NotFound):
                client.get_event(str(uuid.uuid4()))
    finally:
        stop_service(service, database_url)

    spans = exporter.get_finished_spans()
    (call,) = [s for s in spans if s.name == "/audit.v1.AuditService/CreateEvent"]
    assert call.kind == SpanKind.SERVER
    batches = [s for s in spans if s.name == "sequencer.batch"]
    (batch,) = [b for b in batches if any(link.context.span_id == call.context.span_id for link in b.links)]
    assert batch.attributes is not None and batch.attributes["auditlog.batch.events"] == 1
    transactions = [
        s
        for s in spans
        if s.name == "db.transaction" and s.parent is not None and s.parent.span_id == batch.context.span_id
    ]
    assert len(transactions) == 1
    assert transactions[0].context.trace_id == batch.context.trace_id
    (append,) = [s for s in spans if s.name == "/audit.v1.AuditService/AppendEvents"]
    assert append.attributes is not None and str(append.attributes["test.thread"]).startswith("AppendEvents")
    assert any(link.context.span_id == append.context.span_id for b in batches for link in b.links)


def test_without_an_endpoint_opentelemetry_is_not_loaded(tmp_path: Path) -> None:
    probe = (
        "import sys\n"
        "from auditlog import tracing\n"
        "import auditlog.app, auditlog.cli, auditlog._worker\n"
        "assert tracing.configure(None) is None and tracing.server_interceptors() == []\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"
