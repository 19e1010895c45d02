"""Every route Envoy serves x every role x (no credential, bad key, revoked key, right key), through
real Envoy with auth required. The routes and the gRPC method each reaches come from the
descriptor Envoy transcodes with (its google.api.http rules), the expected answer from
`auth.needed_role`: 401 without a valid key, 403 outside the role, else whatever the call itself
answers (a made-up id: 404), never 401 or 403. Health and /metrics answer without credentials."""

from __future__ import annotations

import dataclasses
import re
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources

import psycopg
import pytest
from google.api import annotations_pb2, http_pb2  # type: ignore[import-untyped]
from google.protobuf import descriptor_pb2

from auditlog.api.auth import PUBLIC_METHODS, admits, needed_role
from auditlog.api.principal import Role
from auditlog.config import Config
from auditlog.gateway import GatewaySettings, start_gateway
from auditlog.metrics import serve_metrics
from auditlog.storage.postgres import api_keys
from tests.fix_auth import AuthStack
from tests.fix_gateway import Reply, RestStack

ROLES = [role.value for role in Role]
MADE_UP = str(uuid.uuid4())
# Values for path variables: a made-up id or name, and a tile that need not exist.
_VARIABLES = {"id": MADE_UP, "name": "matrix-nobody", "path": "tile/0/000"}
# Streams answer their status with the first message: this tail ends after event 0.
_QUERIES = {"/audit.v1.AuditService/TailEvents": "?from_sequence=0&to_sequence=0"}


@dataclass(frozen=True)
class Route:
    verb: str
    template: str
    method: str  # the gRPC method it reaches, /package.Service/Method
    body: bool

    @property
    def path(self) -> str:
        filled = re.sub(r"\{(\w+)(=[^}]*)?\}", lambda m: _VARIABLES[m.group(1)], self.template)
        return filled + _QUERIES.get(self.method, "")

    def __str__(self) -> str:
        return f"{self.verb} {self.template}"


def _rules(rule: http_pb2.HttpRule) -> Iterator[http_pb2.HttpRule]:
    yield rule
    for extra in rule.additional_bindings:
        yield from _rules(extra)


def descriptor_routes() -> list[Route]:
    """Every HTTP binding of the descriptor Envoy serves."""
    data = resources.files("auditlog").joinpath("gateway_files/auditlog.binpb").read_bytes()
    found = []
    for file in descriptor_pb2.FileDescriptorSet.FromString(data).file:
        for service in file.service:
            for method in service.method:
                if not method.options.HasExtension(annotations_pb2.http):
                    continue
                for rule in _rules(method.options.Extensions[annotations_pb2.http]):
                    verb = rule.WhichOneof("pattern")
                    assert verb in ("get", "post"), (method.name, verb)
                    name = f"/{file.package}.{service.name}/{method.name}"
                    found.append(Route(verb.upper(), getattr(rule, verb), name, bool(rule.body)))
    return found


ROUTES = descriptor_routes()
PROTECTED = [route for route in ROUTES if route.method not in PUBLIC_METHODS]
PUBLIC = [route for route in ROUTES if route.method in PUBLIC_METHODS]


@dataclass(frozen=True)
class Matrix:
    rest: RestStack
    keys: dict[str, str]  # role -> valid secret
    revoked: dict[str, str]  # role -> revoked secret

    def call(self, route: Route, secret: str | None) -> Reply:
        headers = {"Authorization": f"Bearer {secret}"} if secret is not None else {}
        if route.body:
            headers["Content-Type"] = "application/json"
        return self.rest.request(route.verb, route.path, "{}" if route.body else None, headers)


def _mint(owner_url: str) -> dict[str, str]:
    """A key per role, revoked at once, as `auditlog keys revoke` does."""
    revoked = {}
    with psycopg.connect(owner_url, autocommit=True) as conn:
        for role in ROLES:
            revoked[role] = api_keys.create_key(conn, f"matrix-revoked-{role}", role)[1]
            api_keys.revoke_key(conn, f"matrix-revoked-{role}")
    return revoked


@pytest.fixture(scope="module")
def matrix(auth_stack: AuthStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Matrix]:
    """auth_stack's service behind an Envoy that also routes /metrics, as `auditlog serve` runs it."""
    tmp = tmp_path_factory.mktemp("auth-matrix")
    (tmp / "metrics").mkdir()
    metrics = serve_metrics(tmp / "metrics")
    config = Config(database_url=None, data_dir=tmp, grpc_host="127.0.0.1", http_port=0)
    settings = dataclasses.replace(
        GatewaySettings.for_service(config, auth_stack.service.gateway_port, metrics.server_port),
        concurrency=1,
    )
    try:
        with (tmp / "envoy.log").open("wb") as envoy_log:
            gateway = start_gateway(settings, stderr=envoy_log)
        try:
            found = Matrix(
                RestStack(auth_stack.service, gateway, auth_stack.database_url), auth_stack.keys, {}
            )
            found.revoked.update(_mint(auth_stack.database_url))
            event = {"event_type": "matrix.seed", "action": "create", "user_id": "u1"}
            assert found.rest.post_json("/api/v1/audit", event, _bearer(found.keys["writer"])).status == 200
            _wait_refused(found)
            yield found
        finally:
            gateway.stop()
    finally:
        metrics.shutdown()
        metrics.server_close()


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def _wait_refused(matrix: Matrix) -> None:
    """Until every server key cache has dropped the revoked keys (it reloads twice a second)."""
    deadline = time.monotonic() + 5
    stats = Route("GET", "/api/v1/audit/stats", "/audit.v1.AuditService/GetStats", False)
    while any(matrix.call(stats, secret).status != 401 for secret in matrix.revoked.values()):
        assert time.monotonic() < deadline, "revoked keys still accepted"
        time.sleep(0.1)


def _assert_refusal(reply: Reply, status: int, code: int, secret: str | None) -> dict[str, object]:
    assert reply.status == status, reply.body
    body: dict[str, object] = reply.json()
    assert set(body) == {"code", "message", "details"}, body
    assert body["code"] == code and body["details"] == [], body
    assert isinstance(body["message"], str)
    if secret is not None:
        assert secret not in reply.body.decode(), "the credential is echoed"
    return body


def test_the_descriptor_has_every_route_envoy_serves() -> None:
    served = {str(route) for route in ROUTES}
    # The static C2SP paths, the export content download and the health probes are among them.
    for expected in (
        "GET /log/checkpoint",
        "GET /log/{path=tile/**}",
        "GET /api/v1/export/{id}/content",
        "GET /health",
        "GET /health/live",
        "GET /health/ready",
        "POST /api/v1/keys/{name}:revoke",
    ):
        assert expected in served
    # Only the health probes are public; everything else goes through the role table.
    assert {route.method for route in PUBLIC} == {
        "/audit.v1.HealthService/Check",
        "/audit.v1.HealthService/Ready",
        "/audit.v1.HealthService/Live",
    }
    assert len(PROTECTED) >= 25


@pytest.mark.parametrize("route", PROTECTED, ids=str)
def test_every_protected_route_by_role_and_credential(matrix: Matrix, route: Route) -> None:
    needed = needed_role(route.method)
    name = route.method.rsplit("/", 1)[1]
    _assert_refusal(matrix.call(route, None), 401, 16, None)
    body = _assert_refusal(matrix.call(route, "al_" + "a" * 52), 401, 16, None)
    assert body["message"] == "invalid credentials"
    for role in ROLES:
        revoked = _assert_refusal(matrix.call(route, matrix.revoked[role]), 401, 16, matrix.revoked[role])
        assert revoked["message"] == "invalid credentials"
        secret = matrix.keys[role]
        reply = matrix.call(route, secret)
        if admits(needed, Role(role)):
            assert reply.status not in (401, 403), (role, reply.status, reply.body)
        else:
            body = _assert_refusal(reply, 403, 7, secret)
            assert needed is not None
            assert body["message"] == (
                f"permission denied: {name} needs role {needed.value}; the caller has role {role}"
            )


def test_no_credential_answer_says_what_is_wanted(matrix: Matrix) -> None:
    body = _assert_refusal(matrix.call(PROTECTED[0], None), 401, 16, None)
    assert body["message"] == (
        "missing credentials: want metadata authorization: Bearer <API key>, or a client certificate"
    )


@pytest.mark.parametrize("route", PUBLIC, ids=str)
def test_health_answers_whatever_the_credential(matrix: Matrix, route: Route) -> None:
    for secret in (None, "al_" + "a" * 52, *matrix.revoked.values(), *matrix.keys.values()):
        reply = matrix.call(route, secret)
        assert reply.status == 200, (secret is None, reply.body)


def test_metrics_is_open_and_carries_no_secret(matrix: Matrix) -> None:
    """Served by the parent process, not gRPC: no credential needed (SECURITY.md says so)."""
    reply = matrix.rest.get("/metrics")
    assert reply.status == 200
    assert reply.headers.get("content-type", "").startswith("text/plain")
    text = reply.body.decode()
    assert all(secret not in text for secret in (*matrix.keys.values(), *matrix.revoked.values()))


def test_a_signed_download_url_needs_no_credential_and_an_altered_one_gets_403(matrix: Matrix) -> None:
    auditor = _bearer(matrix.keys["auditor"])
    created = matrix.rest.post_json("/api/v1/export", {"job_name": "signed", "export_format": "csv"}, auditor)
    assert created.status == 200, created.body
    job_id = created.json()["id"]
    deadline = time.monotonic() + 60
    while (
        matrix.rest.request("GET", f"/api/v1/export/{job_id}", None, auditor).json()["status"] != "completed"
    ):
        assert time.monotonic() < deadline, "the export did not complete"
        time.sleep(0.2)
    url = urllib.parse.urlsplit(
        matrix.rest.request("GET", f"/api/v1/export/{job_id}/download", None, auditor).json()["download_url"]
    )
    signed = f"{url.path}?{url.query}"
    assert "signature=" in url.query
    # The link works in a browser that holds no key, and beside a key of a role that could not download.
    assert matrix.rest.request("GET", signed, None, {}).status == 200
    assert matrix.rest.request("GET", signed, None, _bearer(matrix.keys["reader"])).status == 200
    query = urllib.parse.parse_qs(url.query)
    altered = f"{url.path}?expires={int(query['expires'][0]) + 60}&signature={query['signature'][0]}"
    refused = matrix.rest.request("GET", altered, None, {})
    assert refused.status == 403 and "signature does not match" in refused.json()["message"]
    # Without a signature the path is a plain read that needs the auditor role.
    assert matrix.rest.request("GET", url.path, None, {}).status == 401
    assert matrix.rest.request("GET", url.path, None, _bearer(matrix.keys["reader"])).status == 403
