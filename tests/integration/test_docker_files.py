"""Dockerfile and docker-compose.yml: no Docker engine here, so the commands they run are run
directly, with their environment, against the test PostgreSQL."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import yaml

from auditlog.config import load_config
from tests.fix_serve import database_uri, start_serve

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(instruction, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, arguments = line.partition(" ")
            result.append((instruction.upper(), arguments.strip()))
    return result


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction, arguments in dockerfile_instructions():
        if instruction == "ENV":
            for word in shlex.split(arguments):
                name, _, value = word.partition("=")
                env[name] = value
    return env


def exec_form(instruction: str) -> list[str]:
    """The JSON (exec) form of CMD or of HEALTHCHECK's CMD."""
    (arguments,) = [a for i, a in dockerfile_instructions() if i == instruction]
    command: list[str] = json.loads(arguments[arguments.index("[") :])
    return command


def in_repo(env: dict[str, str]) -> dict[str, str]:
    """The image's /app is this repository."""
    return {k: v.replace("/app/", f"{ROOT}/").replace("/app", str(ROOT)) for k, v in env.items()}


def compose_service_env(name: str) -> dict[str, str]:
    service = yaml.safe_load(COMPOSE.read_text())["services"][name]
    env: dict[str, str] = {}
    for item in service["environment"]:
        key, _, value = item.partition("=")
        env[key] = value
    return env


def test_compose_brings_up_postgresql_15_and_the_service() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    assert services["db"]["image"] == "postgres:15"
    service = services["audit-service"]
    assert service["build"] == "."
    assert service["depends_on"]["db"]["condition"] == "service_healthy"
    assert set(service["ports"]) == {"8000:8000", "50051:50051"}
    db_env = dict(item.split("=", 1) for item in services["db"]["environment"])
    url = compose_service_env("audit-service")["DATABASE_URL"]
    assert url == (
        f"postgresql+asyncpg://{db_env['POSTGRES_USER']}:{db_env['POSTGRES_PASSWORD']}@db:5432/{db_env['POSTGRES_DB']}"
    )


def test_image_and_compose_environment_is_valid_configuration() -> None:
    config = load_config({**dockerfile_env(), **compose_service_env("audit-service")})
    assert (config.http_port, config.grpc_port) == (8000, 50051)
    assert config.database_url == "postgresql://postgres:password@db:5432/audit_db"
    assert config.cors_origins == ("http://localhost:3000",)
    exposed = [a.split() for i, a in dockerfile_instructions() if i == "EXPOSE"]
    assert sorted(exposed[0]) == ["50051", "8000"]


def test_image_copies_what_the_service_needs() -> None:
    copied = [a.split()[0] for i, a in dockerfile_instructions() if i == "COPY"]
    for source in copied:
        assert (ROOT / source).exists(), source
    # What the service reads besides its code is package data, installed with it.
    assert "server/" in copied
    assert [key for key in dockerfile_env() if key.startswith("AUDITLOG_") and key.endswith("_DIR")] == [
        "AUDITLOG_DATA_DIR"
    ]


def test_image_command_and_health_check_run(database_url: str, tmp_path: Path) -> None:
    env = {**os.environ, **in_repo(dockerfile_env()), **compose_service_env("audit-service")}
    # The compose database URL names the `db` host; here it is the test server, in the same
    # postgresql+asyncpg:// form. Free ports instead of 8000/50051, which may be taken here.
    env["DATABASE_URL"] = database_uri(database_url).replace("postgresql://", "postgresql+asyncpg://")
    env.update(AUDITLOG_DATA_DIR=str(tmp_path / "data"), GRPC_PORT="0", HTTP_PORT="0", GRPC_HOST="127.0.0.1")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    serve = start_serve(env, tmp_path / "serve.log", exec_form("CMD"))
    try:
        serve.wait_ready()
        check = exec_form("HEALTHCHECK")
        done = subprocess.run(
            check, env={**env, "HTTP_PORT": str(serve.http_port)}, capture_output=True, timeout=30
        )
        assert done.returncode == 0, done.stderr
        serve.process.send_signal(signal.SIGTERM)  # the image's STOPSIGNAL
        assert serve.exit_code() == 0, serve.output()
    finally:
        if serve.process.poll() is None:
            serve.process.kill()
            serve.process.wait()
    stopped = subprocess.run(
        check, env={**env, "HTTP_PORT": str(serve.http_port)}, capture_output=True, timeout=30
    )
    assert stopped.returncode == 1
    assert b"not ready" in stopped.stderr
