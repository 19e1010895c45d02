"""auditctl tail and export as people and programs use them: through a pseudo-terminal (tables and
progress bars) and through pipes (JSON lines, no bar, nothing else on stdout)."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

from auditlog_client import AuditClient
from auditlog_client.client import event_input

CLI = [sys.executable, "-m", "auditlog_client.cli"]


def piped(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, check=False)


class Terminal:
    """auditctl with stdin, stdout and stderr on one pseudo-terminal."""

    def __init__(self, *args: str) -> None:
        master, slave = pty.openpty()
        self.process = subprocess.Popen(
            [*CLI, *args], stdin=slave, stdout=slave, stderr=slave, close_fds=True
        )
        os.close(slave)
        self.master = master
        self.output = b""

    def read_until(self, wanted: bytes, timeout: float = 60) -> bool:
        deadline = time.monotonic() + timeout
        while wanted not in self.output and time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(self.master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    return wanted in self.output
                if not data:
                    break
                self.output += data
        return wanted in self.output

    def finish(self, timeout: float = 60) -> int:
        self.read_until(b"\0never\0", timeout=0.5)
        code = self.process.wait(timeout)
        self.read_until(b"\0never\0", timeout=0.5)
        os.close(self.master)
        return code

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)
        os.close(self.master)


def seed(client: AuditClient, count: int) -> None:
    client.append_events(
        [
            event_input(event_type="user.login" if i % 2 else "doc.read", action=f"act{i}", user_id=f"u{i}")
            for i in range(count)
        ]
    )


def test_tail_on_a_pipe_prints_json_lines_in_each_format(client: AuditClient, target: str) -> None:
    seed(client, 7)
    done = piped("--target", target, "tail", "-n", "5")
    assert done.returncode == 0 and done.stderr == ""
    assert [int(json.loads(line)["sequence"]) for line in done.stdout.splitlines()] == [2, 3, 4, 5, 6]
    ndjson = piped(
        "--target", target, "tail", "--format", "ndjson", "--from-sequence", "0", "--event-type", "doc.read"
    )
    assert [json.loads(line)["sequence"] for line in ndjson.stdout.splitlines()] == [0, 2, 4, 6]
    ocsf = piped("--target", target, "tail", "--format", "ocsf", "-n", "2", "--origin", "audit.example")
    records = [json.loads(line) for line in ocsf.stdout.splitlines()]
    assert [(r["class_uid"], r["metadata"]["sequence"], r["metadata"]["log_name"]) for r in records] == [
        (3002, 5, "audit.example"),
        (6003, 6, "audit.example"),
    ]


def test_tail_follow_on_a_terminal_prints_a_table_of_new_events(client: AuditClient, target: str) -> None:
    seed(client, 2)
    terminal = Terminal("--target", target, "tail", "--follow", "-n", "1")
    try:
        assert terminal.read_until(b"act1")
        assert b"SEQUENCE" in terminal.output and b"EVENT_TYPE" in terminal.output
        client.create_event(event_type="doc.read", action="followed_live")
        assert terminal.read_until(b"followed_live")
        assert b"{" not in terminal.output  # a table, not JSON
    finally:
        terminal.stop()


def test_export_on_a_terminal_shows_progress_bars_and_tables(
    client: AuditClient, target: str, tmp_path: Path
) -> None:
    seed(client, 300)
    terminal = Terminal(
        "--target", target, "export", "create", "--name", "Feed", "--format", "ocsf", "--wait"
    )
    assert terminal.finish() == 0
    shown = terminal.output.decode()
    assert "export " in shown and "100% 300/300 rows" in shown and "[###" in shown
    job_id = next(line.split()[1] for line in shown.splitlines() if line.startswith("id "))
    assert any(line.split() == ["status", "completed"] for line in shown.splitlines())
    saved = tmp_path / "feed.ndjson"
    terminal = Terminal("--target", target, "export", "download", job_id, "-o", str(saved))
    assert terminal.finish() == 0
    shown = terminal.output.decode()
    assert f"download feed.ocsf.ndjson [{'#' * 30}] 100%" in shown
    assert len(saved.read_text().splitlines()) == 300


def test_export_on_a_pipe_is_json_without_a_bar(client: AuditClient, target: str, tmp_path: Path) -> None:
    seed(client, 50)
    created = piped("--target", target, "export", "create", "--name", "Feed", "--format", "ndjson", "--wait")
    assert created.returncode == 0 and created.stderr == ""
    job = json.loads(created.stdout)
    assert job["status"] == "completed" and job["rows_written"] == "50"
    listed = piped("--target", target, "export", "list")
    assert [json.loads(line)["id"] for line in listed.stdout.splitlines()] == [job["id"]]
    got = piped("--target", target, "export", "get", job["id"])
    assert json.loads(got.stdout)["file_name"] == "feed.ndjson"
    to_stdout = piped("--target", target, "export", "download", job["id"], "-o", "-")
    lines = to_stdout.stdout.splitlines()
    assert [json.loads(line)["sequence"] for line in lines] == list(range(50))  # the file alone
    assert "\r" not in to_stdout.stderr and "%" not in to_stdout.stderr


def test_errors_are_one_line_without_a_traceback(target: str) -> None:
    for args, code, said in [
        (["tail", "--from-sequence", "-1"], 2, "auditctl: --from-sequence: got -1, want 0 or more"),
        (["export", "get", "not-a-uuid"], 1, "auditctl: INVALID_ARGUMENT: "),
        (["export", "create", "--name", "x", "--format", "pdf"], 1, "auditctl: INVALID_ARGUMENT: "),
    ]:
        done = piped("--target", target, *args)
        assert done.returncode == code, done.stderr
        assert done.stderr.startswith(said) and len(done.stderr.splitlines()) == 1, done.stderr
        assert "Traceback" not in done.stderr and done.stdout == ""
