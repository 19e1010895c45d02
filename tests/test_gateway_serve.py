"""`auditlog serve` as a process: gRPC and Envoy start together and stop together."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import grpc
import psycopg
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from auditlog.cli import _watch
from tests.fix_gateway import RestStack

READY = re.compile(r"auditlog: gRPC on port (\d+), REST on port (\d+) \(Envoy pid (\d+)\)")


def database_uri(conninfo: str) -> str:
    """DATABASE_URL takes URLs; the test fixtures hand out key=value conninfo strings."""
    parts = psycopg.conninfo.conninfo_to_dict(conninfo)
    user = quote(str(parts.get("user", "postgres")))
    password = quote(str(parts.get("password", "")))
    host = str(parts.get("host", "localhost"))
    query = ""
    if host.startswith("/"):
        query, host = f"?host={quote(host)}", ""
    port = f":{parts['port']}" if "port" in parts and host else ""
    return f"postgresql://{user}:{password}@{host}{port}/{parts['dbname']}{query}"


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"  # a zombie has exited; only its parent has not reaped it yet


def wait_until(predicate: object, timeout: float = 20.0) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


@dataclass
class Serve:
    process: subprocess.Popen[bytes]
    log: Path
    grpc_port: int = 0
    http_port: int = 0
    envoy_pid: int = 0

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self) -> None:
        def ready() -> bool:
            assert self.process.poll() is None, self.output()
            return READY.search(self.output()) is not None

        wait_until(ready, timeout=60)
        match = READY.search(self.output())
        assert match is not None
        self.grpc_port, self.http_port, self.envoy_pid = (int(g) for g in match.groups())

    def exit_code(self, timeout: float = 30.0) -> int:
        return self.process.wait(timeout)


def serve_env(database_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "HTTP_PORT", "GRPC_PORT")}
    env.update(
        DATABASE_URL=database_uri(database_url),
        AUDITLOG_DATA_DIR=str(tmp_path / "data"),
        GRPC_HOST="127.0.0.1",
        GRPC_PORT="0",
        HTTP_PORT="0",
        CORS_ORIGINS='["http://localhost:3000"]',
        # Envoy's config folder: the tests that SIGKILL `auditlog serve` leave it behind (a killed
        # process cleans nothing up), so it goes where pytest cleans.
        TMPDIR=str(tmp_path),
    )
    env.update(extra)
    return env


def start_serve(env: dict[str, str], log: Path, command: list[str] | None = None) -> Serve:
    command = command or [sys.executable, "-m", "auditlog.cli", "serve"]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    return Serve(process, log)


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


def http_get(port: int, path: str) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as reply:
        status: int = reply.status
        return status


def grpc_serving(port: int) -> bool:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def port_closed(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


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
