"""`auditlog serve` as a child process, and small probes of what it runs (plugin: tests/conftest.py)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import grpc
import psycopg
from grpc_health.v1 import health_pb2, health_pb2_grpc

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


# The start-up line of `auditlog serve` with AUDITLOG_WORKERS > 1.
WORKERS = re.compile(r"; (\d+) gRPC worker processes, pids ([0-9, ]+)")
