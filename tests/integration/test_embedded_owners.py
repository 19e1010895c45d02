"""The embedded PostgreSQL stops with its last owner, even after an earlier owner was killed -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.fix_db import postgres_data_dir
from tests.fix_serve import alive

OWNER = """
import sys, time
from pathlib import Path
from auditlog.storage.postgres.database import start_embedded
start_embedded(Path(sys.argv[1]))
print("UP", flush=True)
if sys.argv[2] == "stay":
    time.sleep(600)
"""


def owner(data_dir: Path, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", OWNER, str(data_dir), mode], stdout=subprocess.PIPE, text=True
    )


def postmaster_pid(data_dir: Path) -> int | None:
    pidfile = data_dir / "pgdata" / "postmaster.pid"
    return int(pidfile.read_text().split()[0]) if pidfile.exists() else None


def test_a_clean_stop_after_a_killed_owner_stops_postgresql() -> None:
    with postgres_data_dir() as data_dir:
        killed = owner(data_dir, "stay")
        try:
            assert killed.stdout is not None and killed.stdout.readline().strip() == "UP"
            postgres = postmaster_pid(data_dir)
            assert postgres is not None and alive(postgres)
            killed.kill()  # SIGKILL: it never removes itself from the owners file
            killed.wait()
            assert str(killed.pid) in (data_dir / "pgdata" / ".handle_pids.json").read_text()

            clean = owner(data_dir, "exit")
            out, _ = clean.communicate(timeout=120)
            assert clean.returncode == 0 and out.strip() == "UP"
            deadline = time.monotonic() + 10
            while alive(postgres) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not alive(postgres), "PostgreSQL outlived its last owner"
            assert postmaster_pid(data_dir) is None
        finally:
            if killed.poll() is None:
                killed.kill()
                killed.wait()
            if killed.stdout is not None:
                killed.stdout.close()
            left = postmaster_pid(data_dir)
            if left is not None and alive(left):
                os.kill(left, signal.SIGQUIT)  # immediate shutdown, so the folder can go
