"""auditctl as a user runs it: bad option values and an unreachable server give one line on stderr
and a non-zero exit, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.fix_cli import auditctl
from tests.fix_s3 import free_port
from tests.fix_server import append_padded


def create(target: str, details: str) -> subprocess.CompletedProcess[str]:
    return auditctl("--target", target, "create", "--event-type", "t", "--action", "a", "--details", details)


@pytest.mark.parametrize(
    ("details", "said"),
    [
        ("not json", "got 'not json' (Expecting value), want a JSON object"),
        ("[1, 2]", "got an array, want a JSON object"),
        ('"text"', "got a string, want a JSON object"),
        ("null", "got null, want a JSON object"),
        ('{"a": NaN}', "NaN is not a JSON number"),
        ('{"a": [1e400]}', "too large for a double"),
        ('{"a": "\\ud800"}', "want valid Unicode text"),
        ('{"a": ' * 60 + "1" + "}" * 60, "nested deeper than protobuf allows"),
    ],
)
def test_bad_details_is_one_line_exit_2(details: str, said: str) -> None:
    # The server is never reached: the option is refused first.
    done = create(f"127.0.0.1:{free_port()}", details)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("auditctl: --details: ") and said in done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize(
    "command",
    [
        ["create", "--event-type", "t", "--action", "a", "--details", '{"k": 1}'],
        ["get", "00000000-0000-0000-0000-000000000000"],
        ["search", "--user-id", "u"],
        ["verify"],
        ["stats"],
    ],
)
def test_unreachable_server_is_one_line_exit_1(command: list[str]) -> None:
    done = auditctl("--target", f"127.0.0.1:{free_port()}", *command)
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("auditctl: UNAVAILABLE: ")
    assert len(done.stderr.splitlines()) == 1, done.stderr


def test_good_details_are_recorded(target: str) -> None:
    done = create(target, '{"ip": "10.0.0.1", "n": [1, 2.5]}')
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["details"] == {"ip": "10.0.0.1", "n": [1, 2.5]}


def test_reader_leaving_early_is_not_an_error(target: str) -> None:
    """`auditctl search | head -1`: the reader closes the pipe after one line."""
    append_padded(target, 200, 2000)
    with subprocess.Popen(
        [sys.executable, "-m", "auditlog_client.cli", "--target", target, "search"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        assert json.loads(process.stdout.readline())["event_type"] == "stream.pad"
        process.stdout.close()
        assert process.wait(timeout=60) == 0
        assert process.stderr.read() == ""
