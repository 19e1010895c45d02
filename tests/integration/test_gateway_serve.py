"""`auditlog serve` as a process: gRPC and Envoy start together and stop together."""

from __future__ import annotations

import os
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from auditlog.cli import _watch
from tests.fix_gateway import RestStack
from tests.fix_serve import (
    Serve,
    alive,
    grpc_serving,
    http_get,
    port_closed,
    serve_env,
    start_serve,
    wait_until,
)


@pytest.fixture
def serve(database_url: str, tmp_path: Path) -> Iterator[Serve]:
    running = start_serve(serve_env(database_url, tmp_path), tmp_path / "serve.log")
    try:
        running.wait_ready()
        yield running
    finally:
        if running.process.poll() is None:
            running.process.kill()
            running.process.wait()
        if running.envoy_pid and alive(running.envoy_pid):
            os.kill(running.envoy_pid, signal.SIGKILL)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_both_cleanly(serve: Serve, signum: int) -> None:
    assert http_get(serve.http_port, "/health/ready") == 200
    assert grpc_serving(serve.grpc_port)
    assert alive(serve.envoy_pid)
    serve.process.send_signal(signum)
    assert serve.exit_code() == 0, serve.output()
    assert not alive(serve.envoy_pid)
    assert port_closed(serve.http_port)
    assert port_closed(serve.grpc_port)
    assert "Traceback" not in serve.output()


def test_envoy_dying_stops_the_grpc_server_and_fails(serve: Serve) -> None:
    os.kill(serve.envoy_pid, signal.SIGKILL)
    assert serve.exit_code() == 1
    assert "Envoy (REST gateway) exited unexpectedly" in serve.output()
    assert port_closed(serve.grpc_port)


def test_envoy_does_not_outlive_a_killed_service(serve: Serve) -> None:
    serve.process.kill()
    serve.process.wait()
    wait_until(lambda: not alive(serve.envoy_pid), timeout=10)


def test_taken_http_port_fails_clearly(database_url: str, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = serve_env(database_url, tmp_path, HTTP_PORT=str(port))
        running = start_serve(env, tmp_path / "serve.log")
        assert running.exit_code(60) == 1
    assert "cannot start the REST gateway (Envoy)" in running.output()
    assert "Traceback" not in running.output()


def test_watch_reports_a_grpc_server_that_stopped_on_its_own(rest_fresh: RestStack) -> None:
    rest_fresh.service.server.stop(0).wait()
    reason = _watch(rest_fresh.service, rest_fresh.gateway, threading.Event())
    assert reason == "the gRPC server stopped unexpectedly; stopping Envoy"


def test_watch_returns_nothing_after_a_signal(rest_fresh: RestStack) -> None:
    stop = threading.Event()
    stop.set()
    assert _watch(rest_fresh.service, rest_fresh.gateway, stop) is None
