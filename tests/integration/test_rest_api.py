"""Every AuditService and HealthService REST path through real Envoy: answers and errors."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from tests.fix_gateway import Reply, RestStack

UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


def create(rest: RestStack, **fields: Any) -> dict[str, Any]:
    body = {"event_type": "rest.test", "action": "created", **fields}
    reply = rest.post_json("/api/v1/audit", body)
    assert reply.status == 200, reply.body
    event: dict[str, Any] = reply.json()
    return event


def violations(reply: Reply) -> dict[str, str]:
    """field -> description of the google.rpc.BadRequest detail of a 400."""
    assert reply.status == 400, (reply.status, reply.body)
    status = reply.json()
    assert status["code"] == 3
    found: dict[str, str] = {}
    for detail in status.get("details", []):
        if detail["@type"] == "type.googleapis.com/google.rpc.BadRequest":
            found.update({v["field"]: v["description"] for v in detail["field_violations"]})
    return found


def assert_json_error(reply: Reply, status: int, code: int) -> dict[str, Any]:
    assert reply.status == status, (reply.status, reply.body)
    body: dict[str, Any] = reply.json()
    assert body["code"] == code
    assert body["message"]
    assert b"Traceback" not in reply.body
    return body


def test_health_answers_while_the_process_runs(rest: RestStack) -> None:
    reply = rest.get("/health")
    assert reply.status == 200
    assert reply.json() == {"status": "ok", "service": "auditlog", "version": "0.1.0"}


def test_readiness_answers_when_postgresql_answers(rest: RestStack) -> None:
    reply = rest.get("/health/ready")
    assert reply.status == 200
    assert reply.json() == {"status": "ready", "database": "ok"}


def test_liveness_answers_while_not_shutting_down(rest: RestStack) -> None:
    reply = rest.get("/health/live")
    assert reply.status == 200
    assert reply.json() == {"status": "alive"}


def test_created_event_has_snake_case_keys_and_every_field(rest: RestStack) -> None:
    event = create(rest, user_id="u1", risk_level="high", request_id=f"req-{uuid.uuid4()}")
    assert set(event) == {
        "id",
        "sequence",
        "event_type",
        "user_id",
        "action",
        "resource_type",
        "resource_id",
        "details",
        "risk_level",
        "ip_address",
        "user_agent",
        "session_id",
        "request_id",
        "recorded_at",
        "recorded_by",
        "leaf_hash",
        "prev_hash",
        "chain_hash",
        "canonical_version",
    }  # occurred_at is absent when the client did not say
    assert event["canonical_version"] == 2  # an int32 is a JSON number
    assert event["risk_level"] == "high"
    assert event["details"] == {}
    assert isinstance(event["sequence"], str)  # int64 is a JSON string in proto3 JSON


def test_occurred_at_is_accepted_with_and_without_an_offset(rest: RestStack) -> None:
    plain = create(rest, occurred_at="2024-01-01T00:00:00")
    offset = create(rest, occurred_at="2024-01-01T02:00:00+02:00")
    assert plain["occurred_at"] == offset["occurred_at"] == "2024-01-01T00:00:00Z"


def test_retry_with_the_same_request_id_returns_the_original(rest: RestStack) -> None:
    request_id = f"idem-{uuid.uuid4()}"
    first = create(rest, request_id=request_id)
    again = create(rest, request_id=request_id)
    assert again == first


def test_event_is_returned_by_id(rest: RestStack) -> None:
    event = create(rest, details={"nested": {"list": [1, "two", True, None]}})
    reply = rest.get(f"/api/v1/audit/{event['id']}")
    assert reply.status == 200
    assert reply.json() == event


def test_unknown_id_is_404(rest: RestStack) -> None:
    body = assert_json_error(rest.get(f"/api/v1/audit/{UNKNOWN_ID}"), 404, 5)
    assert UNKNOWN_ID in body["message"]


def test_malformed_id_is_400_naming_the_field(rest: RestStack) -> None:
    assert "id" in violations(rest.get("/api/v1/audit/not-a-uuid"))


def test_append_records_events_in_order(rest: RestStack) -> None:
    reply = rest.post_json(
        "/api/v1/audit:append", {"events": [{"event_type": "rest.batch", "action": str(i)} for i in range(3)]}
    )
    assert reply.status == 200, reply.body
    events = reply.json()["events"]
    assert [e["action"] for e in events] == ["0", "1", "2"]
    sequences = [int(e["sequence"]) for e in events]
    assert sequences == list(range(sequences[0], sequences[0] + 3))


def test_list_filters_and_pages(rest: RestStack) -> None:
    user = f"lister-{uuid.uuid4().hex[:8]}"
    ids = [create(rest, user_id=user, risk_level="medium")["id"] for _ in range(5)]
    reply = rest.get(f"/api/v1/audit?user_id={user}&page=1&page_size=2&order_by=sequence%20asc")
    assert reply.status == 200
    first = reply.json()
    assert [e["id"] for e in first["events"]] == ids[:2]
    assert first["page"] == 1
    assert first["page_size"] == 2
    assert first["next_page_token"]
    second = rest.get(
        f"/api/v1/audit?user_id={user}&page_size=2&order_by=sequence%20asc&page_token={first['next_page_token']}"
    )
    assert [e["id"] for e in second.json()["events"]] == ids[2:4]
    newest_first = rest.get(f"/api/v1/audit?user_id={user}&risk_level=medium").json()
    assert [e["id"] for e in newest_first["events"]] == ids[::-1]


def test_list_accepts_dates_with_and_without_an_offset(rest: RestStack) -> None:
    user = f"dated-{uuid.uuid4().hex[:8]}"
    create(rest, user_id=user)
    for start in (
        "2024-01-01T00:00:00",
        "2024-01-01T00:00:00Z",
        "2024-01-01T02:00:00%2B02:00",
        "2024-01-01T02:00:00+02:00",
    ):
        reply = rest.get(f"/api/v1/audit?user_id={user}&start_date={start}")
        assert reply.status == 200, (start, reply.body)
        assert len(reply.json()["events"]) == 1
    future = rest.get(f"/api/v1/audit?user_id={user}&start_date=2999-01-01T00:00:00")
    assert future.json()["events"] == []


def test_query_strings_are_form_decoded_and_offsets_survive_it(rest: RestStack) -> None:
    user = f"John Smith {uuid.uuid4().hex[:8]}"
    event = create(rest, user_id=user)
    query = user.replace(" ", "+")
    assert [e["id"] for e in rest.get(f"/api/v1/audit?user_id={query}").json()["events"]] == [event["id"]]
    # recorded_at written at +05:00: a `+` (now a space) and `%2B` must both keep the offset.
    recorded = datetime.fromisoformat(event["recorded_at"]).astimezone(timezone(timedelta(hours=5)))
    at = recorded.isoformat()
    for end in (at, at.replace("+", "%2B")):
        reply = rest.get(f"/api/v1/audit?user_id={query}&end_date={end}&start_date={end}")
        assert reply.status == 200, (end, reply.body)
        assert [e["id"] for e in reply.json()["events"]] == [event["id"]], end


def test_dates_with_digits_of_other_scripts_are_400(rest: RestStack) -> None:
    found = violations(
        rest.get("/api/v1/audit?start_date=%EF%BC%92%EF%BC%90%EF%BC%92%EF%BC%94-01-01T00:00:00Z")
    )
    assert "start_date" in found
    reply = rest.post_json(
        "/api/v1/audit",
        {"event_type": "t", "action": "a", "occurred_at": "\uff12\uff10\uff12\uff14-01-01T00:00:00Z"},
    )
    assert "event.occurred_at" in violations(reply)


def test_bad_query_values_are_400_naming_each_field(rest: RestStack) -> None:
    found = violations(rest.get("/api/v1/audit?risk_level=extreme&start_date=yesterday&page_size=5000"))
    assert set(found) >= {"risk_level", "start_date", "page_size"}
    assert "extreme" in found["risk_level"]


def test_query_value_of_the_wrong_type_is_400(rest: RestStack) -> None:
    body = assert_json_error(rest.get("/api/v1/audit?page_size=many"), 400, 3)
    assert "page_size" in body["message"]


def test_unknown_query_parameter_is_400(rest: RestStack) -> None:
    body = assert_json_error(rest.get("/api/v1/audit?colour=blue"), 400, 3)
    assert "colour" in body["message"]


def test_bad_body_values_are_400_naming_each_field(rest: RestStack) -> None:
    reply = rest.post_json(
        "/api/v1/audit", {"event_type": "", "action": "x", "risk_level": "extreme", "ip_address": "999.1.1.1"}
    )
    found = violations(reply)
    assert set(found) >= {"event.event_type", "event.risk_level", "event.ip_address"}


def test_malformed_json_body_is_400(rest: RestStack) -> None:
    reply = rest.request("POST", "/api/v1/audit", "{not json", {"Content-Type": "application/json"})
    assert_json_error(reply, 400, 3)


def test_body_field_of_the_wrong_type_is_400(rest: RestStack) -> None:
    reply = rest.post_json("/api/v1/audit", {"event_type": "x", "action": "y", "details": "not an object"})
    assert_json_error(reply, 400, 3)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/nothing"),
        ("GET", "/"),
        ("GET", "/api/v2/audit"),
        ("DELETE", f"/api/v1/audit/{UNKNOWN_ID}"),
        ("PUT", "/api/v1/audit"),
        ("PATCH", "/api/v1/audit/stats"),
        ("POST", "/health"),
        ("GET", "/audit.v1.AuditService/GetStats"),
    ],
)
def test_unknown_path_or_method_is_404_json(rest: RestStack, method: str, path: str) -> None:
    reply = rest.request(method, path)
    assert_json_error(reply, 404, 5)


def test_verify_whole_log_and_a_range(rest: RestStack) -> None:
    create(rest)
    create(rest)
    whole = rest.post_json("/api/v1/audit/verify", {"verify_all": True})
    assert whole.status == 200
    result = whole.json()
    assert result["valid"] is True
    assert result["break_kind"] == "BREAK_KIND_UNSPECIFIED"
    assert int(result["events_checked"]) == int(result["head_sequence"]) + 1
    ranged = rest.post_json("/api/v1/audit/verify", {"start_sequence": 0, "end_sequence": 1}).json()
    assert ranged["valid"] is True
    assert ranged["events_checked"] == "2"


def test_verify_with_contradictory_request_is_400(rest: RestStack) -> None:
    create(rest)
    found = violations(rest.post_json("/api/v1/audit/verify", {"verify_all": True, "start_sequence": 0}))
    assert "verify_all" in found


def test_stats_count_events(rest: RestStack) -> None:
    before = int(rest.get("/api/v1/audit/stats").json()["total_events"])
    create(rest, risk_level="critical", user_id="stats-user")
    stats = rest.get("/api/v1/audit/stats").json()
    assert int(stats["total_events"]) == before + 1
    assert int(stats["high_risk_events"]) >= 1
    assert len(stats["head_chain_hash"]) == 64


def test_search_streams_every_match_in_sequence_order(rest: RestStack) -> None:
    kind = f"rest.search.{uuid.uuid4().hex[:8]}"
    ids = [create(rest, event_type=kind)["id"] for _ in range(3)]
    reply = rest.get(f"/api/v1/audit/search?event_type={kind}")
    assert reply.status == 200
    assert reply.headers["transfer-encoding"] == "chunked"
    # A JSON array of messages, each {"events": [...]}; three events fit in one.
    assert [[e["id"] for e in message["events"]] for message in reply.json()] == [ids]
    assert rest.get("/api/v1/audit/search?event_type=nothing.matches").json() == []


def test_search_with_bad_filter_is_400(rest: RestStack) -> None:
    assert "risk_level" in violations(rest.get("/api/v1/audit/search?risk_level=extreme"))
    assert_json_error(rest.get("/api/v1/audit/search?page=1"), 400, 3)  # not a search parameter
