"""Ports: a port left in TIME_WAIT by an earlier server can be reserved again at once; a port that a
running server holds cannot be taken by a second one."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from auditlog.workers import reserve_port
from tests.fix_db import create_database, drop_database
from tests.fix_serve import Serve, grpc_serving, http_get, serve_env, start_serve


def time_wait_port() -> int:
    """A port whose listener closed after it closed a connection first: the server side of that
    connection stays in TIME_WAIT (for 60 s on Linux), as after a stopped single-process server."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port: int = listener.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = listener.accept()
        accepted.close()  # the server closes first: its end goes to TIME_WAIT
        client.recv(1)  # the client sees the close
        client.close()
    if shutil.which("ss"):
        states = subprocess.run(
            ["ss", "-Htan", "state", "time-wait", f"( sport = :{port} )"], capture_output=True, text=True
        )
        assert states.stdout.strip(), "no TIME_WAIT connection was left"
    return port


def test_a_port_in_time_wait_is_reserved_at_once() -> None:
    port = time_wait_port()
    with reserve_port("127.0.0.1", port) as reserved:
        assert reserved.port == port


@pytest.fixture(scope="module")
def first(admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Serve, str]]:
    """A running `auditlog serve` with two workers (their port reserved with SO_REUSEPORT)."""
    url = create_database(admin_url)
    tmp = tmp_path_factory.mktemp("first")
    running = start_serve(serve_env(url, tmp, AUDITLOG_WORKERS="2"), tmp / "serve.log")
    try:
        running.wait_ready()
        yield running, url
    finally:
        running.process.send_signal(signal.SIGTERM)
        running.exit_code()
        drop_database(admin_url, url)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_second_service_on_the_same_http_port_does_not_start(
    first: tuple[Serve, str], tmp_path: Path, workers: str
) -> None:
    running, url = first
    env = serve_env(url, tmp_path, HTTP_PORT=str(running.http_port), AUDITLOG_WORKERS=workers)
    second = start_serve(env, tmp_path / "serve.log")
    try:
        assert second.exit_code(60) == 1, second.output()
    finally:
        if second.process.poll() is None:
            second.process.kill()
            second.process.wait()
    said = (
        f"auditlog: cannot start the REST gateway (Envoy) on port {running.http_port}:"
        f" cannot listen on 127.0.0.1:{running.http_port}: Address already in use"
    )
    assert said in second.output().splitlines(), second.output()
    assert "Traceback" not in second.output()
    assert http_get(running.http_port, "/health/ready") == 200


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_second_service_on_the_same_grpc_port_does_not_start(
    first: tuple[Serve, str], tmp_path: Path, workers: str
) -> None:
    running, url = first
    env = serve_env(url, tmp_path, GRPC_PORT=str(running.grpc_port), AUDITLOG_WORKERS=workers)
    second = start_serve(env, tmp_path / "serve.log")
    try:
        assert second.exit_code(60) == 1, second.output()
    finally:
        if second.process.poll() is None:
            second.process.kill()
            second.process.wait()
    assert f"auditlog: cannot start: cannot listen on 127.0.0.1:{running.grpc_port}" in second.output()
    assert "Traceback" not in second.output()
    assert grpc_serving(running.grpc_port)
