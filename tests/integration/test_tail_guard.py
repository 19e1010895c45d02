"""The sequencer extends the log only from a stored tail that matches its head: a row planted beyond
the head or rows removed from the tail stop appends with FAILED_PRECONDITION naming the sequence,
and readiness says why, until the log is repaired."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import psycopg
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from audit.v1 import event_pb2, health_service_pb2, health_service_pb2_grpc
from auditlog.app import Service, create_service
from auditlog_client import AuditClient, FailedPrecondition
from tests.fix_serve import alive, serve_env, start_serve
from tests.fix_server import server_config, stop_service

EVENTS = 4
# A copy of the last event one sequence further on, its chain hash unchanged (so it cannot match).
PLANT = (
    "INSERT INTO audit_events SELECT sequence + 1, gen_random_uuid(), event_type, user_id, action,"
    " resource_type, resource_id, details, risk_level, ip_address, user_agent, session_id, '',"
    " occurred_at, recorded_at, leaf_hash, chain_hash, chain_hash FROM audit_events"
    f" WHERE sequence = {EVENTS - 1}"
)
STOPPED = "the log's stored tail does not match its head at sequence {}: appends are stopped; run VerifyChain"


@pytest.fixture
def as_role(client: AuditClient, database_url: str) -> Callable[..., None]:
    """Seeds the log, then runs statements as the owner with the WORM triggers off, or as the
    service's role."""
    for i in range(EVENTS):
        client.create_event(event_type="doc.edit", action="edit", user_id=f"u{i}")

    def run(role: str, *statements: str) -> None:
        with psycopg.connect(database_url) as conn:
            if role == "owner":
                conn.execute("SET session_replication_role = replica")
            else:
                conn.execute("SET ROLE auditlog_service")
            for statement in statements:
                conn.execute(statement.encode())

    return run


def _ready(target: str) -> tuple[grpc.StatusCode, str]:
    with grpc.insecure_channel(target) as channel:
        try:
            health_service_pb2_grpc.HealthServiceStub(channel).Ready(health_service_pb2.ReadyRequest())
        except grpc.RpcError as err:
            return err.code(), err.details() or ""
    return grpc.StatusCode.OK, ""


def _serving(target: str) -> int:
    with grpc.insecure_channel(target) as channel:
        return int(health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest()).status)


def _eventually(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def _stored_sequences(database_url: str) -> list[int]:
    with psycopg.connect(database_url) as conn:
        return [row[0] for row in conn.execute("SELECT sequence FROM audit_events ORDER BY sequence")]


@pytest.mark.parametrize("role", ["owner", "auditlog_service"])
def test_a_row_planted_beyond_the_head_stops_appends_with_failed_precondition(
    as_role: Callable[..., None], client: AuditClient, target: str, role: str
) -> None:
    as_role(role, PLANT)
    for _ in range(3):  # one-trip and locked paths alike, every time, never INTERNAL
        with pytest.raises(FailedPrecondition) as info:
            client.create_event(event_type="doc.edit", action="edit")
        assert str(info.value).endswith(STOPPED.format(EVENTS))
    with pytest.raises(FailedPrecondition):
        client.append_events([event_pb2.EventInput(event_type="doc.edit", action="edit")] * 100)
    assert _ready(target) == (grpc.StatusCode.UNAVAILABLE, "not ready: " + STOPPED.format(EVENTS))
    _eventually(lambda: _serving(target) == health_pb2.HealthCheckResponse.NOT_SERVING)


def test_rows_removed_from_the_tail_are_not_appended_after(
    as_role: Callable[..., None], client: AuditClient, target: str, database_url: str
) -> None:
    as_role("owner", f"DELETE FROM audit_events WHERE sequence >= {EVENTS - 2}")
    with pytest.raises(FailedPrecondition, match=f"at sequence {EVENTS - 2}:"):
        client.create_event(event_type="doc.edit", action="edit")
    assert _stored_sequences(database_url) == list(range(EVENTS - 2))
    assert _ready(target)[0] == grpc.StatusCode.UNAVAILABLE


def test_appends_and_readiness_come_back_once_the_log_is_repaired(
    as_role: Callable[..., None], client: AuditClient, target: str, database_url: str
) -> None:
    as_role("owner", PLANT)
    with pytest.raises(FailedPrecondition):
        client.create_event(event_type="doc.edit", action="edit")
    _eventually(lambda: _serving(target) == health_pb2.HealthCheckResponse.NOT_SERVING)
    as_role("owner", f"DELETE FROM audit_events WHERE sequence = {EVENTS}")
    _eventually(lambda: _serving(target) == health_pb2.HealthCheckResponse.SERVING)
    assert _ready(target) == (grpc.StatusCode.OK, "")
    assert client.create_event(event_type="doc.edit", action="edit").sequence == EVENTS
    assert client.verify_chain(verify_all=True).valid


def test_a_service_started_on_a_mismatched_tail_is_not_ready_at_once(
    as_role: Callable[..., None], database_url: str, tmp_path: Path
) -> None:
    as_role("owner", PLANT)
    other: Service = create_service(server_config(tmp_path / "other"), database_url=database_url)
    try:
        target = f"127.0.0.1:{other.port}"
        assert _serving(target) == health_pb2.HealthCheckResponse.NOT_SERVING
        assert _ready(target)[1] == "not ready: " + STOPPED.format(EVENTS)
    finally:
        stop_service(other, database_url, grace=1)


def test_the_start_up_line_says_appends_are_stopped(
    as_role: Callable[..., None], database_url: str, tmp_path: Path
) -> None:
    as_role("owner", PLANT)
    running = start_serve(serve_env(database_url, tmp_path), tmp_path / "serve.log")
    try:
        running.wait_ready()
        line = next(line for line in running.output().splitlines() if "auditlog: gRPC on port" in line)
        assert line.endswith("; NOT SERVING: " + STOPPED.format(EVENTS))
    finally:
        running.process.send_signal(signal.SIGTERM)
        running.exit_code()
        if running.envoy_pid and alive(running.envoy_pid):
            os.kill(running.envoy_pid, signal.SIGKILL)
