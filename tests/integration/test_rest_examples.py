"""The README's REST examples, run verbatim (only the port differs) through real Envoy."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.fix_gateway import Reply, RestStack

README = Path(__file__).resolve().parents[2] / "README.md"

# Issue 3's published examples, exactly as published.
PUBLISHED = [
    """curl -X POST "http://localhost:8000/api/v1/audit" -H "Content-Type: application/json" -d '{
  "event_type": "user.login", "user_id": "user123", "action": "successful_login",
  "resource_type": "authentication", "resource_id": "session_456",
  "details": {"login_method": "password", "device_type": "web"}, "risk_level": "low",
  "ip_address": "192.168.1.100", "user_agent": "Mozilla/5.0..."}'""",
    'curl "http://localhost:8000/api/v1/audit?event_type=user.login&start_date=2024-01-01T00:00:00&page=1&page_size=50"',
    """curl -X POST "http://localhost:8000/api/v1/audit/verify" -H "Content-Type: application/json" -d '{"verify_all": true}'""",
    'curl "http://localhost:8000/api/v1/audit/stats"',
    'curl "http://localhost:8000/health/ready"',
]


@dataclass(frozen=True)
class Curl:
    """The subset of curl the examples use: -X, -H, -d, -N and one URL."""

    method: str
    url: str
    headers: dict[str, str]
    data: str | None

    @classmethod
    def parse(cls, command: str) -> Curl:
        words = shlex.split(command.replace("\\\n", " "))
        assert words[0] == "curl"
        method, url, headers, data = "", "", {}, None
        i = 1
        while i < len(words):
            word = words[i]
            if word == "-X":
                method, i = words[i + 1], i + 2
            elif word == "-H":
                name, _, value = words[i + 1].partition(":")
                headers[name.strip()] = value.strip()
                i += 2
            elif word == "-d":
                data, i = words[i + 1], i + 2
            elif word == "-N":
                i += 1
            else:
                assert not word.startswith("-"), f"unsupported curl option {word}"
                url, i = word, i + 1
        if data is not None:
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        return cls(method or ("POST" if data is not None else "GET"), url, headers, data)

    def run(self, rest: RestStack) -> Reply:
        parts = urlsplit(self.url)
        assert (parts.hostname, parts.port) == ("localhost", 8000)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        # curl sends the -d text as is (bytes of the shell word): no re-encoding.
        return rest.request(self.method, path, self.data, self.headers)


def readme_examples() -> list[str]:
    """The curl commands of the README's REST section, each with its continuation lines."""
    text = README.read_text()
    section = text.split("\n## REST\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert block is not None
    commands: list[str] = []
    for line in block.group(1).splitlines():
        if line.startswith("curl "):
            commands.append(line)
        else:
            commands[-1] += "\n" + line
    return commands


def test_readme_holds_the_published_examples_verbatim() -> None:
    examples = readme_examples()
    for published in PUBLISHED:
        assert published in examples


def test_readme_examples_work_verbatim(rest: RestStack) -> None:
    replies = {}
    for command in readme_examples():
        curl = Curl.parse(command)
        reply = curl.run(rest)
        assert reply.status == 200, (command, reply.status, reply.body)
        replies[f"{curl.method} {urlsplit(curl.url).path}"] = reply.json()

    event = replies["POST /api/v1/audit"]
    assert event["user_id"] == "user123"
    assert event["risk_level"] == "low"
    assert event["details"] == {"login_method": "password", "device_type": "web"}
    assert event["ip_address"] == "192.168.1.100"
    assert event["id"] in [e["id"] for e in replies["GET /api/v1/audit"]["events"]]
    assert replies["POST /api/v1/audit/verify"]["valid"] is True
    assert int(replies["GET /api/v1/audit/stats"]["total_events"]) >= 1
    assert replies["GET /health/ready"] == {"status": "ready", "database": "ok"}
    assert event["id"] in [e["id"] for m in replies["GET /api/v1/audit/search"] for e in m["events"]]
    job = replies["POST /api/v1/export"]
    assert job["job_name"] == "Monthly Audit Report"
    assert job["export_format"] == "xlsx"
    assert job["requested_by"] == "admin"
    assert job["filters"]["start_date"].startswith("2024-01-01T00:00:00")
    assert {f["name"] for f in replies["GET /api/v1/export/formats"]["formats"]} >= {"csv", "json", "xlsx"}


def test_create_example_returns_the_recorded_event(rest: RestStack) -> None:
    reply = Curl.parse(PUBLISHED[0]).run(rest)
    assert reply.status == 200
    event = reply.json()
    assert set(event) >= {"id", "sequence", "recorded_at", "prev_hash", "chain_hash", "leaf_hash"}
    assert event["event_type"] == "user.login"
    assert event["action"] == "successful_login"
    assert event["resource_type"] == "authentication"
    assert event["resource_id"] == "session_456"
    assert event["user_agent"] == "Mozilla/5.0..."
    assert re.fullmatch(r"[0-9a-f]{64}", event["chain_hash"])
    assert event["recorded_at"].endswith("Z")


def test_search_example_finds_the_created_event(rest: RestStack) -> None:
    created = Curl.parse(PUBLISHED[0]).run(rest).json()
    listing = Curl.parse(PUBLISHED[1]).run(rest).json()
    assert listing["page"] == 1
    assert listing["page_size"] == 50
    assert created["id"] in [e["id"] for e in listing["events"]]
    assert all(e["event_type"] == "user.login" for e in listing["events"])


@pytest.mark.skipif(shutil.which("curl") is None, reason="the curl program is not installed")
def test_published_examples_with_the_real_curl(rest: RestStack) -> None:
    for published in PUBLISHED:
        command = published.replace("localhost:8000", f"127.0.0.1:{rest.port}")
        words = shlex.split(command)
        done = subprocess.run(
            [*words, "--silent", "--show-error", "--write-out", "\n%{http_code}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        body, _, status = done.stdout.rpartition("\n")
        assert status == "200", (published, done.stdout)
        json.loads(body)
