"""REST while things break: PostgreSQL unreachable, a search stream losing its database, the gRPC
server gone. Each test gets its own server, Envoy and database.

"PostgreSQL down" is made real for one database without stopping the shared test server: it stops
accepting connections (ALLOW_CONNECTIONS false) and its sessions are terminated, so the service sees
exactly what it would see from a dead server: broken connections and refused new ones.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager

import grpc
import psycopg
from grpc_health.v1 import health_pb2, health_pb2_grpc
from psycopg import sql

from tests.fix_gateway import ChunkedStream, RestStack, fill
from tests.fix_server import search_backends


def _dbname(url: str) -> str:
    name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    assert isinstance(name, str)
    return name


@contextmanager
def database_down(admin_url: str, database_url: str) -> Iterator[None]:
    name = _dbname(database_url)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(sql.Identifier(name)))
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        try:
            yield
        finally:
            conn.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(sql.Identifier(name)))


def wait_for(predicate: object, timeout: float = 15.0) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)


def test_readiness_is_503_while_postgresql_is_down(rest_fresh: RestStack, admin_url: str) -> None:
    assert rest_fresh.get("/health/ready").status == 200
    with database_down(admin_url, rest_fresh.database_url):
        reply = rest_fresh.get("/health/ready")
        assert reply.status == 503
        assert reply.json()["code"] == 14
        assert "database" in reply.json()["message"]
        assert b"Traceback" not in reply.body and b"psycopg" not in reply.body
        # The process runs and is not shutting down: basic health and liveness stay up.
        assert rest_fresh.get("/health").status == 200
        assert rest_fresh.get("/health/live").status == 200
        # Writes fail the same way, as 503 JSON.
        write = rest_fresh.post_json("/api/v1/audit", {"event_type": "x", "action": "y"})
        assert write.status == 503
        assert write.json()["code"] == 14
        # gRPC health through Envoy follows the database too.
        with grpc.insecure_channel(rest_fresh.grpc_target) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            wait_for(
                lambda: (
                    health.Check(health_pb2.HealthCheckRequest(), timeout=5).status
                    == health_pb2.HealthCheckResponse.NOT_SERVING
                )
            )
    wait_for(lambda: rest_fresh.get("/health/ready").status == 200)


def test_liveness_is_503_once_the_server_shuts_down(rest_fresh: RestStack) -> None:
    rest_fresh.service.shutting_down.set()  # what Service.stop() sets first
    try:
        assert rest_fresh.get("/health/live").status == 503
        assert rest_fresh.get("/health/ready").status == 503
        assert rest_fresh.get("/health").status == 200
    finally:
        rest_fresh.service.shutting_down.clear()


def test_gateway_answers_503_json_when_the_grpc_server_is_gone(rest_fresh: RestStack) -> None:
    rest_fresh.service.stop(grace=1)
    reply = rest_fresh.get("/api/v1/audit/stats")
    assert reply.status == 503
    assert reply.json()["code"] == 14


def test_search_failing_mid_stream_is_visible_in_trailers(rest_fresh: RestStack) -> None:
    # More events than the server reads ahead (two cursor batches of 1,000), each large enough that
    # the first batch cannot fit in the buffers between a slow reader and the server: the server
    # then waits on backpressure, mid-stream, with its cursor open.
    total = 2_500
    fill(rest_fresh, total, pad=6_000)
    stream = ChunkedStream(rest_fresh.port, "/api/v1/audit/search?event_type=bulk.stream")
    try:
        assert stream.status_line == b"HTTP/1.1 200 OK"
        assert stream.headers["transfer-encoding"] == "chunked"
        chunks = stream.chunks()
        body = next(chunks)
        assert body.startswith(b'[{"events":[{')
        wait_for(
            lambda: any(
                state == "idle in transaction" for _, state in search_backends(rest_fresh.database_url)
            )
        )
        with psycopg.connect(rest_fresh.database_url, autocommit=True) as conn:
            for pid, _ in search_backends(rest_fresh.database_url):
                conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
        body += b"".join(chunks)
    finally:
        stream.close()
    assert stream.complete
    assert stream.trailers["grpc-status"] == "14"  # UNAVAILABLE
    assert stream.trailers["grpc-message"] == "the database is unavailable; retry later"
    # The messages that arrived are whole (a JSON array of {"events": [...]}), in order.
    events = [event for message in json.loads(body) for event in message["events"]]
    assert 0 < len(events) < total
    assert [int(e["sequence"]) for e in events] == list(range(len(events)))


def test_search_that_completes_ends_with_status_zero_trailers(rest_fresh: RestStack) -> None:
    rest_fresh.post_json("/api/v1/audit", {"event_type": "one", "action": "a"})
    stream = ChunkedStream(rest_fresh.port, "/api/v1/audit/search")
    try:
        body = b"".join(stream.chunks())
    finally:
        stream.close()
    assert stream.complete
    assert stream.trailers["grpc-status"] == "0"
    assert [[e["event_type"] for e in message["events"]] for message in json.loads(body)] == [["one"]]
