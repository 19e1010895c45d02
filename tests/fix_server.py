"""A real gRPC server on a free port over a fresh database, and clients for it."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

import grpc
import psycopg
import pytest
from google.protobuf import struct_pb2

from audit.v1 import audit_service_pb2, audit_service_pb2_grpc, event_pb2
from auditlog.app import Service, create_service
from auditlog.config import Config
from auditlog_client import AuditClient
from tests.fix_db import login_url


def stop_service(svc: Service, owner_url: str, grace: float = 2) -> None:
    """svc.stop(grace), announcing the current head on the listener's channel (migration
    0010_tail_notify) meanwhile, so its head listener notices the stop at once rather than at its
    next wake-up; the announcement is the one a commit makes."""
    with ThreadPoolExecutor(1, thread_name_prefix="stop") as pool:
        stopping = pool.submit(svc.stop, grace=grace)
        try:
            with psycopg.connect(owner_url, autocommit=True, connect_timeout=2) as conn:
                while not stopping.done():
                    conn.execute(
                        "SELECT pg_notify('auditlog_head', sequence::text) FROM log_head WHERE id = 1"
                    )
                    wait([stopping], timeout=0.02)
        except psycopg.Error:
            pass  # no database (a test stopped or broke it): the listener ends at its wake-up
        stopping.result()


def server_config(tmp_path: Path) -> Config:
    return Config(database_url=None, data_dir=tmp_path / "data", grpc_host="127.0.0.1", grpc_port=0)


@pytest.fixture
def service(database_url: str, test_login: str, tmp_path: Path) -> Iterator[Service]:
    """Logs in as a plain login role; migrations run as database_url's (the owner, a superuser)."""
    svc = create_service(
        server_config(tmp_path),
        database_url=login_url(database_url, test_login),
        migration_url=database_url,
        health_interval=0.2,
    )
    yield svc
    stop_service(svc, database_url)


@pytest.fixture
def target(service: Service) -> str:
    return f"127.0.0.1:{service.port}"


@pytest.fixture
def client(target: str) -> Iterator[AuditClient]:
    with AuditClient(target) as c:
        yield c


@pytest.fixture
def channel(target: str) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(target) as ch:
        yield ch


@pytest.fixture
def stub(channel: grpc.Channel) -> audit_service_pb2_grpc.AuditServiceStub:
    return audit_service_pb2_grpc.AuditServiceStub(channel)


def append_padded(target: str, count: int, pad: int, event_type: str = "stream.pad") -> None:
    """count events of about pad bytes each, 500 to an AppendEvents call, straight over gRPC (setup)."""
    options = [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]
    with grpc.insecure_channel(target, options=options) as channel:
        audit = audit_service_pb2_grpc.AuditServiceStub(channel)
        for start in range(0, count, 500):
            events = []
            for i in range(start, min(count, start + 500)):
                details = struct_pb2.Struct()
                details.update({"pad": "x" * pad, "i": i})
                events.append(event_pb2.EventInput(event_type=event_type, action="fill", details=details))
            audit.AppendEvents(audit_service_pb2.AppendEventsRequest(events=events), timeout=60)


def search_backends(database_url: str) -> list[tuple[int, str]]:
    """(pid, state) of the service's sessions whose last statement was a search (its cursor is named
    auditlog_search)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid, state FROM pg_stat_activity"
            " WHERE datname = current_database() AND query LIKE %s AND pid <> pg_backend_pid()",
            ("%auditlog_search%",),
        ).fetchall()
    return [(int(pid), str(state)) for pid, state in rows]
