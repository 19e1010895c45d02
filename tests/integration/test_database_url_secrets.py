"""`auditlog serve` with a DATABASE_URL it cannot use: one line naming the variable and the problem,
and never the user name, password or query values of the URL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tests.fix_s3 import free_port

USER = "alice7user"
SECRETS = (USER, "S3cr", "Pass")


def serve(database_url: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(
        DATABASE_URL=database_url,
        AUDITLOG_DATA_DIR=str(tmp_path / "data"),
        GRPC_HOST="127.0.0.1",
        GRPC_PORT="0",
        HTTP_PORT="0",
        TMPDIR=str(tmp_path),
    )
    return subprocess.run(
        [sys.executable, "-m", "auditlog.cli", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def assert_no_secret(output: str) -> None:
    for secret in SECRETS:
        assert secret not in output, output


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (f"postgresql://{USER}:S3cr%zzPass@127.0.0.1:5432/audit", "'%' not followed by two hex digits"),
        (f"postgresql://{USER}:S3cr Pass@127.0.0.1:5432/audit", "space"),
        (f"postgresql://{USER}:S3cr@Pass@127.0.0.1:5432/audit", "more than one '@'"),
        (f"postgresql+asyncpg://{USER}:S3crPass@127.0.0.1:Pass/audit", "port must be a number"),
        (f"postgresql://{USER}:S3crPass@127.0.0.1/audit?bogus=1", 'invalid URI query parameter: "bogus"'),
    ],
)
def test_unparseable_url_names_the_problem_not_the_secret(url: str, problem: str, tmp_path: Path) -> None:
    done = serve(url, tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "DATABASE_URL: cannot be parsed (" in output and problem in output
    assert len(output.strip().splitlines()) == 1, output
    assert_no_secret(output)


def test_refused_connection_hides_credentials_in_query_values(tmp_path: Path) -> None:
    url = f"postgresql://127.0.0.1:{free_port()}/audit?user={USER}&password=S3crPass&sslmode=S3crPass"
    done = serve(url, tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "cannot start: " in output and 'invalid sslmode value: "***"' in output
    assert_no_secret(output)


def test_unknown_role_is_not_named(admin_url: str, tmp_path: Path) -> None:
    """PostgreSQL names the role it refused; the service must not repeat it."""
    parts = psycopg.conninfo.conninfo_to_dict(admin_url)
    host = str(parts.get("host", "127.0.0.1"))
    place = f"?host={host}" if host.startswith("/") else ""
    authority = "" if place else f"{host}:{parts.get('port', 5432)}"
    url = f"postgresql://{USER}:S3crPass@{authority}/{parts['dbname']}{place}"
    done = serve(url, tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "cannot start: " in output and '"***"' in output
    assert_no_secret(output)
