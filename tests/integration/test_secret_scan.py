"""tests/fix_secrets.py, run over a small suite of its own in a child pytest: a minted API key in
captured logging or in a log file, a key a child process wrote to admin-api-key and logged, and the
test login's password each fail the run naming where; the secrets themselves are never shown, and
stdout and key-shaped strings nobody minted do not count."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHILD_KEY = "al_" + "b" * 52
PASSWORD = "pw-" + "d" * 20

SUITE = f'''
import logging

import pytest

from auditlog.storage.postgres import api_keys

log = logging.getLogger("auditlog.child")


@pytest.fixture
def test_login():
    return "{PASSWORD}"


def test_logs_a_key():
    log.warning("made %s", api_keys.new_secret())


def test_writes_a_key_to_a_log_file(tmp_path):
    (tmp_path / "server.log").write_text(f"started with {{api_keys.new_secret()}}\\n")


def test_a_child_minted_and_logged(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "admin-api-key").write_text("{CHILD_KEY}\\n")
    (tmp_path / "serve.log").write_text("admin key {CHILD_KEY}\\n")


def test_logs_the_password(test_login):
    log.warning("connecting with %s", test_login)


def test_prints_a_key_to_stdout():
    print(api_keys.new_secret())


def test_clean(tmp_path):
    api_keys.new_secret()
    log.warning("key created")
    (tmp_path / "quiet.log").write_text("al_" + "c" * 52 + " was never minted\\n")
'''


def test_a_secret_in_any_log_fails_the_run_naming_where_not_what() -> None:
    # Outside this run's temporary directory, which this run's own scan reads.
    with tempfile.TemporaryDirectory(prefix="auditlog-secret-scan-") as folder:
        tmp = Path(folder)
        (tmp / "test_child.py").write_text(SUITE)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        run = subprocess.run(
            [
                sys.executable, "-m", "pytest", "-p", "tests.fix_secrets", "-p", "no:cacheprovider",
                "-q", "--rootdir", str(tmp), "--basetemp", str(tmp / "base"), "test_child.py",
            ],
            cwd=tmp, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    out = run.stdout + run.stderr
    assert run.returncode == 1, out
    assert "6 passed, 1 error" in out, out
    [named] = [line for line in out.splitlines() if line.startswith("E   ") and "appears in: " in line]
    assert "Captured log call of test_child.py::test_logs_a_key" in named
    assert "0/server.log" in named and "0/serve.log" in named and "quiet.log" not in named
    assert "Captured log call of test_child.py::test_logs_the_password" in named
    assert "test_prints_a_key_to_stdout" not in named and "test_clean" not in named, named
    assert CHILD_KEY not in out and PASSWORD not in out
