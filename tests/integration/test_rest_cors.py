"""CORS through Envoy: origins in CORS_ORIGINS get preflight and response headers, others none."""

from __future__ import annotations

from tests.fix_gateway import CORS_ORIGIN, RestStack

OTHER_ORIGIN = "http://evil.example"


def preflight(rest: RestStack, origin: str, path: str = "/api/v1/audit"):
    return rest.request(
        "OPTIONS",
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )


def test_preflight_from_an_allowed_origin_is_answered(rest: RestStack) -> None:
    reply = preflight(rest, CORS_ORIGIN)
    assert reply.status == 200
    assert reply.headers["access-control-allow-origin"] == CORS_ORIGIN
    assert "POST" in reply.headers["access-control-allow-methods"]
    assert "content-type" in reply.headers["access-control-allow-headers"]
    assert reply.headers["access-control-max-age"] == "600"


def test_preflight_from_another_origin_is_refused_without_cors_headers(rest: RestStack) -> None:
    for path in ("/api/v1/audit", "/api/v1/audit/stats", "/nowhere"):
        reply = preflight(rest, OTHER_ORIGIN, path)
        assert reply.status == 403, (path, reply.body)
        assert reply.json() == {"code": 7, "message": "CORS preflight refused: origin not allowed"}
        assert not [name for name in reply.headers if name.lower().startswith("access-control-")]
        assert reply.headers["vary"] == "Origin"


def test_cors_answers_vary_by_origin(rest: RestStack) -> None:
    # A cache keyed on the URL alone would hand one origin's CORS headers to another.
    for reply in (
        preflight(rest, CORS_ORIGIN),
        rest.get("/health", {"Origin": CORS_ORIGIN}),
        rest.get("/health", {"Origin": OTHER_ORIGIN}),
        rest.get("/api/v1/nothing", {"Origin": CORS_ORIGIN}),
    ):
        assert "Origin" in reply.headers.get_all("vary", []), reply.headers


def test_responses_to_an_allowed_origin_carry_cors_headers(rest: RestStack) -> None:
    reply = rest.post_json("/api/v1/audit", {"event_type": "cors", "action": "a"}, {"Origin": CORS_ORIGIN})
    assert reply.status == 200
    assert reply.headers["access-control-allow-origin"] == CORS_ORIGIN
    assert "x-request-id" in reply.headers["access-control-expose-headers"]


def test_error_responses_to_an_allowed_origin_carry_cors_headers(rest: RestStack) -> None:
    # A browser can read an error only when it carries the CORS headers too.
    for reply in (
        rest.get("/api/v1/audit/not-a-uuid", {"Origin": CORS_ORIGIN}),
        rest.get("/api/v1/nothing", {"Origin": CORS_ORIGIN}),
    ):
        assert reply.status in (400, 404)
        assert reply.headers["access-control-allow-origin"] == CORS_ORIGIN


def test_responses_to_another_origin_carry_none(rest: RestStack) -> None:
    reply = rest.get("/health", {"Origin": OTHER_ORIGIN})
    assert reply.status == 200
    assert not [name for name in reply.headers if name.lower().startswith("access-control-")]


def test_requests_without_an_origin_carry_none(rest: RestStack) -> None:
    reply = rest.get("/health")
    assert not [name for name in reply.headers if name.lower().startswith("access-control-")]
