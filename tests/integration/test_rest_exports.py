"""ExportService REST paths through Envoy (the export logic itself is tested elsewhere)."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

from tests.fix_gateway import RestStack

UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


def create_export(rest: RestStack, export_format: str = "csv", **filters: str) -> dict[str, Any]:
    body = {"job_name": "REST export", "export_format": export_format, "filters": filters}
    reply = rest.post_json("/api/v1/export?requested_by=rest-test", body)
    assert reply.status == 200, reply.body
    job: dict[str, Any] = reply.json()
    return job


def wait_until_finished(rest: RestStack, job_id: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = rest.get(f"/api/v1/export/{job_id}").json()
        if job["status"] in ("completed", "failed") or time.monotonic() > deadline:
            return job
        time.sleep(0.1)


def test_formats_list_the_published_vocabulary(rest: RestStack) -> None:
    reply = rest.get("/api/v1/export/formats")
    assert reply.status == 200
    names = [f["name"] for f in reply.json()["formats"]]
    assert set(names) >= {"csv", "json", "xlsx"}
    assert all(
        set(f) == {"name", "content_type", "file_extension", "description"} for f in reply.json()["formats"]
    )


def test_created_job_is_listed_and_returned_by_id(rest: RestStack) -> None:
    job = create_export(rest, "csv", start_date="2024-01-01T00:00:00")
    assert job["export_format"] == "csv"
    assert job["requested_by"] == "rest-test"
    assert job["status"] in ("pending", "running", "completed")
    listed = rest.get("/api/v1/export").json()
    assert job["id"] in [j["id"] for j in listed["exports"]]
    assert rest.get(f"/api/v1/export/{job['id']}").json()["id"] == job["id"]


def test_unknown_job_is_404(rest: RestStack) -> None:
    for path in (f"/api/v1/export/{UNKNOWN_ID}", f"/api/v1/export/{UNKNOWN_ID}/download"):
        reply = rest.get(path)
        assert reply.status == 404, (path, reply.body)
        assert reply.json()["code"] == 5


def test_bad_export_request_is_400_naming_the_fields(rest: RestStack) -> None:
    reply = rest.post_json("/api/v1/export", {"job_name": "", "export_format": "pdf"})
    assert reply.status == 400
    fields = {v["field"] for d in reply.json()["details"] for v in d.get("field_violations", [])}
    assert any(f.endswith("export_format") for f in fields), fields
    assert any(f.endswith("job_name") for f in fields), fields


def test_finished_job_downloads_through_the_gateway(rest: RestStack) -> None:
    rest.post_json("/api/v1/audit", {"event_type": "export.me", "action": "a"})
    job = wait_until_finished(rest, create_export(rest, "json", event_type="export.me")["id"])
    assert job["status"] == "completed", job
    download = rest.get(f"/api/v1/export/{job['id']}/download")
    assert download.status == 200
    link = download.json()
    assert link["file_sha256"] == job["file_sha256"]
    # Without S3 the URL is the gateway's own content path (its host is PUBLIC_BASE_URL's).
    path = urlsplit(link["download_url"]).path
    assert path == f"/api/v1/export/{job['id']}/content"
    content = rest.get(path)
    assert content.status == 200
    assert len(content.body) == int(job["file_size"])
