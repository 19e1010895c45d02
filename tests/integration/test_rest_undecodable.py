"""REST requests that reach the server as undecodable protobuf answer 400, not 500."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.fix_gateway import Reply, RestStack


def nested(levels: int) -> dict[str, Any]:
    """An object `levels` deep (itself the first level)."""
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def assert_refused(reply: Reply) -> dict[str, Any]:
    assert reply.status == 400, (reply.status, reply.body)
    status = reply.json()
    assert status["code"] == 3
    for leak in (b"Traceback", b"Exception", b".py", b"127.0.0.1"):
        assert leak not in reply.body
    found: dict[str, Any] = {}
    for detail in status.get("details", []):
        if detail["@type"] == "type.googleapis.com/google.rpc.BadRequest":
            found.update({v["field"]: v["description"] for v in detail["field_violations"]})
    return found


@pytest.mark.parametrize(
    ("method", "path", "message_type"),
    [
        ("GET", "/api/v1/audit/%ff", "audit.v1.GetEventRequest"),
        ("GET", "/api/v1/audit?user_id=%ff%fe", "audit.v1.ListEventsRequest"),
        ("GET", "/api/v1/export/%c3%28", "audit.v1.GetExportRequest"),
    ],
)
def test_invalid_utf8_in_path_or_query_is_400(
    rest: RestStack, method: str, path: str, message_type: str
) -> None:
    found = assert_refused(rest.request(method, path))
    assert list(found) == ["request"]
    assert f"not a valid {message_type} " in found["request"]


def test_invalid_utf8_in_the_query_of_a_post_is_400(rest: RestStack) -> None:
    body = {"job_name": "j", "export_format": "csv"}
    found = assert_refused(
        rest.request(
            "POST", "/api/v1/export?requested_by=%ff", json.dumps(body), {"Content-Type": "application/json"}
        )
    )
    assert "not a valid audit.v1.CreateExportRequest " in found["request"]


def test_details_nested_past_the_limit_are_400(rest: RestStack) -> None:
    event = {"event_type": "deep.details", "action": "nest"}
    found = assert_refused(rest.post_json("/api/v1/audit", {**event, "details": nested(25)}))
    assert found == {"event.details": "got objects and lists nested 25 levels deep, want at most 20"}
    # Past what protobuf decodes, the request itself is refused.
    found = assert_refused(rest.post_json("/api/v1/audit", {**event, "details": nested(50)}))
    assert "not a valid audit.v1.CreateEventRequest " in found["request"]
    reply = rest.post_json("/api/v1/audit", {**event, "details": nested(20)})
    assert reply.status == 200, reply.body
    assert reply.json()["details"] == nested(20)
