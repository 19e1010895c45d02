"""Servicers in-process with grpc_testing (no network): every status-code path of the mapping,
and that no answer carries a stack trace, SQL or a file path.

grpc_testing runs no server interceptors, so each servicer method is wrapped here exactly as the
server's registration wraps it (api.status's unary_answer / streamed_answer)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import grpc
import grpc_testing
import pytest
from psycopg_pool import ConnectionPool

from audit.v1 import audit_service_pb2 as pb
from audit.v1 import event_pb2, health_service_pb2
from auditlog.api.audit_servicer import AuditServicer
from auditlog.api.health import HealthServicer
from auditlog.domain.page_token import PageTokenCodec
from auditlog.sequencer import Sequencer
from auditlog.storage.postgres.database import create_pool
from auditlog.storage.postgres.migrations import apply_migrations
from auditlog.storage.postgres.reader import EventStore
from auditlog.storage.postgres.verification_records import VerificationRecords
from tests.fix_servicers import Mapped

AUDIT = pb.DESCRIPTOR.services_by_name["AuditService"]
HEALTH = health_service_pb2.DESCRIPTOR.services_by_name["HealthService"]
KEY = bytes(32)
SECRET = "SELECT * FROM audit_events -- /srv/auditlog/server/auditlog/storage/events.py line 42"

TOKENS = PageTokenCodec(bytes(32))


def broken_clock() -> datetime:
    raise RuntimeError(SECRET)


@pytest.fixture
def sequencer(pool: ConnectionPool) -> Iterator[Sequencer]:
    seq = Sequencer(EventStore(pool).writer())
    seq.start()
    yield seq
    seq.stop()


def invoke(servicer: Any, service: Any, method: str, request: Any) -> tuple[Any, grpc.StatusCode, str]:
    server = grpc_testing.server_from_dictionary(
        {service: Mapped(servicer, service)}, grpc_testing.strict_real_time()
    )
    rpc = server.invoke_unary_unary(service.methods_by_name[method], (), request, None)
    response, _, code, details = rpc.termination()
    return response, code, details


def test_ok_invalid_argument_and_not_found_paths(pool: ConnectionPool, sequencer: Sequencer) -> None:
    servicer = AuditServicer(
        EventStore(pool),
        sequencer,
        lambda: datetime.now(UTC),
        VerificationRecords(pool, KEY),
        TOKENS,
    )
    created, code, _ = invoke(
        servicer,
        AUDIT,
        "CreateEvent",
        pb.CreateEventRequest(event=event_pb2.EventInput(event_type="a.b", action="x")),
    )
    assert code == grpc.StatusCode.OK and created.sequence == 0
    _, code, details = invoke(servicer, AUDIT, "GetEvent", pb.GetEventRequest(id="42"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("invalid request: id: got '42'")
    _, code, details = invoke(servicer, AUDIT, "GetEvent", pb.GetEventRequest(id=str(uuid.UUID(int=7))))
    assert code == grpc.StatusCode.NOT_FOUND and "00000000-0000-0000-0000-000000000007" in details


def test_unexpected_error_is_internal_with_only_a_request_id(
    pool: ConnectionPool, sequencer: Sequencer
) -> None:
    servicer = AuditServicer(
        EventStore(pool), sequencer, broken_clock, VerificationRecords(pool, KEY), TOKENS
    )
    _, code, details = invoke(servicer, AUDIT, "GetStats", pb.GetStatsRequest())
    assert code == grpc.StatusCode.INTERNAL
    assert details.startswith("internal error (request id ")
    for leak in ("SELECT", "/srv", ".py", "Traceback", "RuntimeError"):
        assert leak not in details


def test_unavailable_path_for_a_database_that_is_gone(database_url: str) -> None:
    apply_migrations(database_url)
    pool = create_pool(database_url, max_size=2, timeout=0.5)
    pool.close()
    servicer = HealthServicer(EventStore(pool).ping, threading.Event())
    _, code, details = invoke(servicer, HEALTH, "Ready", health_service_pb2.ReadyRequest())
    assert code == grpc.StatusCode.UNAVAILABLE and details == "not ready: the database is unreachable"
