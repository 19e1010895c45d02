"""`auditlog serve` in staging: auth required by default, said at start-up; the first admin key is
minted into the data directory, never logged; `auditlog keys` works on the database beside it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import grpc

from auditlog.access import ADMIN_KEY_FILE
from tests.fix_serve import WORKERS, alive, serve_env, start_serve

GET_STATS = "/audit.v1.AuditService/GetStats"


def status(port: int, path: str, secret: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def keys(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "auditlog.cli", "keys", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_staging_requires_auth_and_keys_are_managed_from_the_command_line(
    database_url: str, tmp_path: Path
) -> None:
    env = serve_env(database_url, tmp_path, ENVIRONMENT="staging")
    env.pop("AUDITLOG_AUTH", None)
    serve = start_serve(env, tmp_path / "serve.log")
    secrets: list[str] = []
    try:
        serve.wait_ready()
        assert "; auth required" in serve.output()
        key_file = tmp_path / "data" / ADMIN_KEY_FILE
        admin = key_file.read_text().strip()
        secrets.append(admin)
        assert str(key_file.resolve()) in serve.output()
        assert status(serve.http_port, "/api/v1/audit/stats") == 401
        assert status(serve.http_port, "/api/v1/audit/stats", admin) == 200
        assert status(serve.http_port, "/health/ready") == 200

        made = keys(env, "create", "--name", "ops-reader", "--role", "reader")
        assert made.returncode == 0, made.stderr
        reader = made.stdout.strip()
        secrets.append(reader)
        assert reader.startswith("al_") and reader not in made.stderr
        time.sleep(1.0)
        assert status(serve.http_port, "/api/v1/audit/stats", reader) == 200
        assert status(serve.http_port, "/api/v1/audit?page_size=1", reader) == 200
        listed = keys(env, "list")
        assert listed.returncode == 0 and "ops-reader\treader\t" in listed.stdout
        assert "bootstrap-admin\tadmin\t" in listed.stdout and reader not in listed.stdout
        revoked = keys(env, "revoke", "ops-reader")
        assert revoked.returncode == 0, revoked.stderr
        time.sleep(1.0)
        assert status(serve.http_port, "/api/v1/audit/stats", reader) == 401
        bad = keys(env, "create", "--name", "ops-reader", "--role", "root")
        assert bad.returncode == 1 and "role: got 'root'" in bad.stderr
    finally:
        if serve.process.poll() is None:
            serve.process.send_signal(signal.SIGTERM)
            serve.process.wait(30)
        if serve.envoy_pid and alive(serve.envoy_pid):
            os.kill(serve.envoy_pid, signal.SIGKILL)
    log = serve.output()
    for secret in secrets:
        assert secret not in log


def test_development_leaves_auth_off(database_url: str, tmp_path: Path) -> None:
    serve = start_serve(serve_env(database_url, tmp_path), tmp_path / "serve.log")
    try:
        serve.wait_ready()
        assert "; auth off" in serve.output()
        assert status(serve.http_port, "/api/v1/audit/stats") == 200
        assert not (tmp_path / "data" / ADMIN_KEY_FILE).exists()
    finally:
        serve.process.send_signal(signal.SIGTERM)
        serve.process.wait(30)


def fresh_connections(port: int, secret: str, count: int = 20) -> set[grpc.StatusCode]:
    """GetStats on count new connections (SO_REUSEPORT spreads them over the worker processes)."""
    codes = set()
    for _ in range(count):
        with grpc.insecure_channel(
            f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)]
        ) as channel:
            try:
                channel.unary_unary(GET_STATS, None, None)(
                    b"", metadata=(("authorization", f"Bearer {secret}"),), timeout=10
                )
                codes.add(grpc.StatusCode.OK)
            except grpc.RpcError as err:
                codes.add(err.code())
    return codes


def test_revocation_holds_in_every_worker_process_within_a_second(database_url: str, tmp_path: Path) -> None:
    env = serve_env(database_url, tmp_path, ENVIRONMENT="staging", AUDITLOG_WORKERS="2")
    env.pop("AUDITLOG_AUTH", None)
    serve = start_serve(env, tmp_path / "serve.log")
    try:
        serve.wait_ready()
        assert WORKERS.search(serve.output()) and "; auth required" in serve.output()
        admin = (tmp_path / "data" / ADMIN_KEY_FILE).read_text().strip()
        assert fresh_connections(serve.grpc_port, admin) == {grpc.StatusCode.OK}
        assert keys(env, "revoke", "bootstrap-admin").returncode == 0
        time.sleep(1.0)
        assert fresh_connections(serve.grpc_port, admin) == {grpc.StatusCode.UNAUTHENTICATED}
    finally:
        if serve.process.poll() is None:
            serve.process.send_signal(signal.SIGTERM)
            serve.process.wait(30)
    assert admin not in serve.output()
