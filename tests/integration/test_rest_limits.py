"""Size limits over REST through real Envoy: every answer within the documented limits arrives, and
a request past one is refused (413, 431, or 400 naming the limit) before any work."""

from __future__ import annotations

import json
import uuid
from typing import Any

from tests.fix_gateway import Reply, RestStack


def count_of(rest: RestStack, event_type: str) -> int:
    """Events of event_type in the log, by token paging (small pages)."""
    total, token = 0, ""
    while True:
        reply = rest.get(f"/api/v1/audit?event_type={event_type}&page_size=100&page_token={token}")
        assert reply.status == 200, reply.body[:300]
        page = reply.json()
        total += len(page["events"])
        token = page["next_page_token"]
        if not token:
            return total


def append(rest: RestStack, events: list[dict[str, Any]]) -> Reply:
    return rest.post_json("/api/v1/audit:append", {"events": events})


def violations(reply: Reply) -> dict[str, str]:
    assert reply.status == 400, (reply.status, reply.body[:300])
    found: dict[str, str] = {}
    for detail in reply.json().get("details", []):
        found.update({v["field"]: v["description"] for v in detail.get("field_violations", [])})
    return found


def test_append_of_1000_events_with_1_2_kb_details_answers_every_event(rest: RestStack) -> None:
    kind = f"bulk-{uuid.uuid4().hex[:8]}"
    events = [
        {"event_type": kind, "action": "a", "details": {"blob": f"{i:04d}" + "x" * 1200}} for i in range(1000)
    ]
    reply = append(rest, events)
    assert reply.status == 200, reply.body[:300]
    answered = reply.json()["events"]
    assert [e["details"]["blob"][:4] for e in answered] == [f"{i:04d}" for i in range(1000)]
    # A client that got its answer does not retry, so the log holds each event once.
    assert count_of(rest, kind) == 1000


def test_a_page_of_700_events_with_60_kb_details_is_answered(rest: RestStack) -> None:
    kind = f"wide-{uuid.uuid4().hex[:8]}"
    for _ in range(7):
        events = [{"event_type": kind, "action": "a", "details": {"blob": "y" * 60_000}} for _ in range(100)]
        assert append(rest, events).status == 200
    reply = rest.get(f"/api/v1/audit?event_type={kind}&page_size=700")
    assert reply.status == 200, reply.body[:300]
    assert len(reply.json()["events"]) == 700


# `<` is printed as \u003c: six bytes of answer per byte sent, the JSON printer's widest case.
ESCAPED_DETAILS = {"blob": "<" * 60_000}


def test_append_of_40_events_with_60_kb_escaped_details_answers_every_event_in_time(rest: RestStack) -> None:
    kind = f"forty-{uuid.uuid4().hex[:8]}"
    events = [{"event_type": kind, "action": "a", "details": ESCAPED_DETAILS} for _ in range(40)]
    # Up to 64 events go to PostgreSQL in one pipeline: here several MB in one INSERT.
    reply = rest.request(
        "POST",
        "/api/v1/audit:append",
        json.dumps({"events": events}),
        {"Content-Type": "application/json"},
        60,
    )
    assert reply.status == 200, reply.body[:300]
    answered = reply.json()["events"]
    assert len(answered) == 40 and all(e["details"] == ESCAPED_DETAILS for e in answered)
    assert count_of(rest, kind) == 40


def test_append_whose_answer_could_not_be_served_is_refused_before_writing(rest: RestStack) -> None:
    kind = f"refused-{uuid.uuid4().hex[:8]}"
    reply = append(rest, [{"event_type": kind, "action": "a", "details": ESCAPED_DETAILS}] * 250)
    found = violations(reply)
    assert "64 MiB" in found["events"], found
    assert count_of(rest, kind) == 0


def test_a_page_too_big_to_serve_is_refused_by_offset_and_shortened_by_token(rest: RestStack) -> None:
    kind = f"escaped-{uuid.uuid4().hex[:8]}"
    # Two appends: the bound counts 12 bytes per `<`, so 100 such events would be refused at once.
    for _ in range(2):
        assert (
            append(rest, [{"event_type": kind, "action": "a", "details": ESCAPED_DETAILS}] * 50).status == 200
        )
    found = violations(rest.get(f"/api/v1/audit?event_type={kind}&page_size=100&page=1"))
    assert "64 MiB" in found["page_size"], found
    # By token, pages come shorter than asked and together hold every event once.
    first = rest.get(f"/api/v1/audit?event_type={kind}&page_size=1")
    seen = [e["id"] for e in first.json()["events"]]
    token = first.json()["next_page_token"]
    sizes = []
    while token:
        reply = rest.get(f"/api/v1/audit?event_type={kind}&page_size=100&page_token={token}")
        assert reply.status == 200, reply.body[:300]
        page = reply.json()
        seen += [e["id"] for e in page["events"]]
        sizes.append(len(page["events"]))
        token = page["next_page_token"]
    assert len(seen) == len(set(seen)) == 100
    assert len(sizes) == 2 and sizes[0] < 99, sizes


BODY_TOO_LARGE = "request body too large: want at most 16 MiB, as JSON and once converted to protobuf"


def test_a_body_under_16_mib_that_converts_to_over_16_mib_of_protobuf_is_413_and_writes_nothing(
    rest: RestStack,
) -> None:
    kind = f"numbers-{uuid.uuid4().hex[:8]}"
    # `0,` is 2 bytes of JSON and 11 of protobuf (a Value holding a double): 4 MB becomes 22 MB.
    events = [{"event_type": kind, "action": "a", "details": {"n": [0] * 8_000}} for _ in range(250)]
    body = json.dumps({"events": events}, separators=(",", ":"))
    assert len(body) < 16 << 20
    reply = rest.request("POST", "/api/v1/audit:append", body, {"Content-Type": "application/json"})
    assert reply.status == 413, reply.body[:300]
    assert reply.json() == {"code": 8, "message": BODY_TOO_LARGE}
    assert count_of(rest, kind) == 0
    # The same numbers in a request that converts to less than 16 MiB are recorded.
    assert append(rest, events[:50]).status == 200
    assert count_of(rest, kind) == 50


def test_a_body_over_16_mib_is_413_with_a_plain_message(rest: RestStack) -> None:
    body = json.dumps({"events": [{"event_type": "big", "action": "a", "details": {"b": "y" * (17 << 20)}}]})
    reply = rest.request("POST", "/api/v1/audit:append", body, {"Content-Type": "application/json"})
    assert reply.status == 413, reply.body[:300]
    assert reply.json() == {"code": 8, "message": BODY_TOO_LARGE}


def test_headers_within_the_limit_pass_and_over_it_are_431_with_a_plain_message(rest: RestStack) -> None:
    assert rest.get("/api/v1/audit?page_size=1", {"X-Note": "a" * 40_000}).status == 200
    reply = rest.get("/api/v1/audit?page_size=1", {"X-Note": "a" * 70_000})
    assert reply.status == 431, reply.body[:300]
    assert reply.json() == {"code": 8, "message": "request headers too large: want at most 60 KiB in all"}
