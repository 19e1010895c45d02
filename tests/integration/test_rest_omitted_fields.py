"""Through real Envoy: every field of an answer has a key, except the ones docs/api.md lists as
omitted while unset (messages and proto3 `optional` fields, which the transcoder cannot print)."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from google.protobuf.descriptor import Descriptor

from audit.v1 import audit_service_pb2, event_pb2, export_service_pb2
from tests.fix_gateway import RestStack

API_DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
MESSAGES: dict[str, Descriptor] = {
    "AuditEvent": event_pb2.AuditEvent.DESCRIPTOR,
    "VerifyChainResponse": audit_service_pb2.VerifyChainResponse.DESCRIPTOR,
    "GetStatsResponse": audit_service_pb2.GetStatsResponse.DESCRIPTOR,
    "LastVerification": audit_service_pb2.LastVerification.DESCRIPTOR,
    "ExportJob": export_service_pb2.ExportJob.DESCRIPTOR,
    "GetExportDownloadResponse": export_service_pb2.GetExportDownloadResponse.DESCRIPTOR,
}


def documented_omissions() -> dict[str, set[str]]:
    """`Message.field` names in docs/api.md's JSON paragraph."""
    text = API_DOC.read_text()
    paragraph = text[text.index("- **JSON**") : text.index("- **Errors**")]
    found: dict[str, set[str]] = {}
    for message, field in re.findall(r"`([A-Z]\w+)\.(\w+)`", paragraph):
        found.setdefault(message, set()).add(field)
    return found


def missing(answer: dict[str, Any], message: str) -> set[str]:
    """The fields of message without a key in answer (and no key that is not a field)."""
    fields = {f.name for f in MESSAGES[message].fields}
    assert set(answer) <= fields, set(answer) - fields
    return fields - set(answer)


def test_the_documented_fields_are_the_ones_that_can_be_unset() -> None:
    documented = documented_omissions()
    assert set(documented) <= set(MESSAGES)
    for message, fields in documented.items():
        by_name = MESSAGES[message].fields_by_name
        # Only a field with presence can be omitted; every other one always has a key.
        assert all(by_name[name].has_presence for name in fields), (message, fields)


def test_answers_omit_exactly_the_documented_unset_fields(rest_fresh: RestStack) -> None:
    rest, omitted = rest_fresh, documented_omissions()

    # An empty log: nothing checked, never verified.
    stats = rest.get("/api/v1/audit/stats").json()
    never = {"last_verification", "last_failure"}
    assert missing(stats, "GetStatsResponse") == never == omitted["GetStatsResponse"]
    empty = rest.post_json("/api/v1/audit/verify", {"verify_all": True}).json()
    assert missing(empty, "VerifyChainResponse") == omitted["VerifyChainResponse"]

    plain = rest.post_json("/api/v1/audit", {"event_type": "t", "action": "a"}).json()
    assert missing(plain, "AuditEvent") == {"occurred_at"} == omitted["AuditEvent"]
    dated = rest.post_json(
        "/api/v1/audit", {"event_type": "t", "action": "a", "occurred_at": "2024-01-01T00:00:00Z"}
    ).json()
    assert missing(dated, "AuditEvent") == set()
    listed = rest.get("/api/v1/audit?page_size=2").json()
    assert [missing(e, "AuditEvent") for e in listed["events"]] == [set(), {"occurred_at"}]

    valid = rest.post_json("/api/v1/audit/verify", {"verify_all": True}).json()
    assert valid["valid"] is True
    assert missing(valid, "VerifyChainResponse") == {"first_bad_sequence"}
    stats = rest.get("/api/v1/audit/stats").json()
    assert missing(stats, "GetStatsResponse") == {"last_failure"}
    assert missing(stats["last_verification"], "LastVerification") == {"first_bad_sequence"}
    assert omitted["LastVerification"] == {"first_bad_sequence", "start_sequence", "end_sequence"}

    job = rest.post_json("/api/v1/export", {"job_name": "keys", "export_format": "csv"}).json()
    assert missing(job, "ExportJob") <= omitted["ExportJob"] == {"started_at", "finished_at"}
    deadline = time.monotonic() + 30
    while job["status"] != "completed" and time.monotonic() < deadline:
        time.sleep(0.1)
        job = rest.get(f"/api/v1/export/{job['id']}").json()
    assert missing(job, "ExportJob") == set()
    download = rest.get(f"/api/v1/export/{job['id']}/download").json()
    # Local storage too: the link is signed to expire.
    assert missing(download, "GetExportDownloadResponse") == set()
    assert "GetExportDownloadResponse" not in omitted
