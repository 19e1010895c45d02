"""Exports through Envoy: the published example verbatim, the local file downloaded from the
gateway's content path with its type and name, and errors as 400/404 naming the field."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any
from urllib.parse import urlparse

from tests.fix_gateway import RestStack

# The product's published example (SPEC.md), verbatim.
PUBLISHED_BODY = """{
    "job_name": "Monthly Audit Report",
    "export_format": "xlsx",
    "filters": {
      "start_date": "2024-01-01T00:00:00",
      "end_date": "2024-01-31T23:59:59"
    }
  }"""


def wait_done(rest: RestStack, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        reply = rest.get(f"/api/v1/export/{job_id}")
        assert reply.status == 200, reply.body
        job: dict[str, Any] = reply.json()
        if job["status"] in ("completed", "failed") or time.monotonic() > deadline:
            return job
        time.sleep(0.05)


def test_published_export_example_works_verbatim(rest_fresh: RestStack) -> None:
    created = rest_fresh.request(
        "POST",
        "/api/v1/export?requested_by=admin",
        PUBLISHED_BODY,
        {"Content-Type": "application/json"},
    )
    assert created.status == 200, created.body
    job = created.json()
    assert (job["job_name"], job["export_format"], job["requested_by"]) == (
        "Monthly Audit Report",
        "xlsx",
        "admin",
    )
    assert {k: v for k, v in job["filters"].items() if v} == {
        "start_date": "2024-01-01T00:00:00Z",
        "end_date": "2024-01-31T23:59:59Z",
    }
    assert job["status"] in ("pending", "running", "completed")
    assert wait_done(rest_fresh, job["id"])["status"] == "completed"


def test_local_export_downloads_through_the_gateway(rest_fresh: RestStack) -> None:
    event = {"event_type": "user.login", "action": "=1+1", "user_id": "user123", "details": {"k": "v"}}
    assert rest_fresh.post_json("/api/v1/audit", event).status == 200
    job = rest_fresh.post_json(
        "/api/v1/export?requested_by=admin", {"job_name": "Q1 csv", "export_format": "csv"}
    )
    done = wait_done(rest_fresh, job.json()["id"])
    assert done["status"] == "completed" and done["rows_written"] == "1"  # int64 renders as a string
    link = rest_fresh.get(f"/api/v1/export/{done['id']}/download").json()
    path = urlparse(link["download_url"]).path
    assert path == f"/api/v1/export/{done['id']}/content"
    content = rest_fresh.get(path)
    assert content.status == 200
    assert content.headers["content-type"] == "text/csv; charset=utf-8"
    assert content.headers["content-disposition"] == 'attachment; filename="q1-csv.csv"'
    assert hashlib.sha256(content.body).hexdigest() == done["file_sha256"] == link["file_sha256"]
    assert len(content.body) == int(done["file_size"])
    assert b"'=1+1" in content.body


def test_export_formats_over_rest(rest_fresh: RestStack) -> None:
    formats = rest_fresh.get("/api/v1/export/formats").json()["formats"]
    assert [f["name"] for f in formats] == ["csv", "json", "xlsx", "ndjson", "ocsf"]


def test_bad_export_requests_are_400_and_404(rest_fresh: RestStack) -> None:
    bad = rest_fresh.post_json("/api/v1/export", {"job_name": "x", "export_format": "pdf"})
    assert bad.status == 400
    assert "export.export_format" in json.dumps(bad.json())
    dates = rest_fresh.post_json(
        "/api/v1/export", {"job_name": "x", "export_format": "csv", "filters": {"end_date": "soon"}}
    )
    assert dates.status == 400 and "export.filters.end_date" in json.dumps(dates.json())
    missing = rest_fresh.get("/api/v1/export/123e4567-e89b-12d3-a456-426614174000")
    assert missing.status == 404
