"""Authentication through Envoy: the Authorization header reaches the server; 401/403 as JSON
google.rpc.Status bodies; health stays open; Envoy's listener serves HTTPS when given a certificate."""

from __future__ import annotations

import dataclasses
import http.client
import json
import ssl
from pathlib import Path

import pytest

from auditlog.config import Config
from auditlog.gateway import GatewaySettings, start_gateway
from tests.fix_auth import AuthStack
from tests.fix_gateway import RestStack

EVENT = {"event_type": "rest.auth", "action": "create", "user_id": "u1"}


def auth(stack: AuthStack, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.keys[role]}"}


def test_without_credentials_rest_is_401_with_the_json_error_shape(auth_rest: RestStack) -> None:
    reply = auth_rest.get("/api/v1/audit")
    assert reply.status == 401
    body = reply.json()
    assert body["code"] == 16 and body["message"].startswith("missing credentials")
    reply = auth_rest.get("/api/v1/audit", {"Authorization": "Bearer al_not-a-key"})
    assert reply.status == 401 and reply.json() == {
        "code": 16,
        "message": "invalid credentials",
        "details": [],
    }


def test_revoked_key_is_401(auth_rest: RestStack, auth_stack: AuthStack) -> None:
    assert auth_rest.get("/api/v1/audit/stats", auth(auth_stack, "revoked")).status == 401


@pytest.mark.parametrize(
    ("role", "read", "write", "exports", "keys"),
    [
        ("writer", 403, 200, 403, 403),
        ("reader", 200, 403, 403, 403),
        ("auditor", 200, 403, 200, 403),
        ("admin", 200, 200, 200, 200),
    ],
)
def test_each_role_over_rest(
    auth_rest: RestStack, auth_stack: AuthStack, role: str, read: int, write: int, exports: int, keys: int
) -> None:
    headers = auth(auth_stack, role)
    assert auth_rest.get("/api/v1/audit?page_size=5", headers).status == read
    assert auth_rest.get("/api/v1/audit/stats", headers).status == read
    assert auth_rest.post_json("/api/v1/audit", EVENT, headers).status == write
    assert auth_rest.get("/api/v1/export/formats", headers).status == exports
    assert auth_rest.get("/api/v1/keys", headers).status == keys


def test_forbidden_names_the_role_needed(auth_rest: RestStack, auth_stack: AuthStack) -> None:
    reply = auth_rest.get("/api/v1/audit/stats", auth(auth_stack, "writer"))
    assert reply.status == 403
    assert reply.json()["code"] == 7
    assert "GetStats needs role reader" in reply.json()["message"]


def test_health_needs_no_credentials(auth_rest: RestStack) -> None:
    for path in ("/health", "/health/live", "/health/ready"):
        assert auth_rest.get(path).status == 200, path


def test_keys_over_rest(auth_rest: RestStack, auth_stack: AuthStack) -> None:
    admin = auth(auth_stack, "admin")
    made = auth_rest.post_json("/api/v1/keys", {"name": "rest-reader", "role": "reader"}, admin)
    assert made.status == 200, made.body
    secret = made.json()["secret"]
    reader = {"Authorization": f"Bearer {secret}"}
    assert auth_rest.get("/api/v1/audit/stats", reader).status == 200
    revoked = auth_rest.request("POST", "/api/v1/keys/rest-reader:revoke", headers=admin)
    assert revoked.status == 200 and revoked.json()["revoked_at"]
    assert auth_rest.get("/api/v1/audit/stats", reader).status == 401
    listed = auth_rest.get("/api/v1/keys", admin)
    assert secret not in listed.body.decode()


def test_envoy_serves_https_with_http_tls_files(auth_stack: AuthStack, tmp_path: Path) -> None:
    pki = auth_stack.pki
    config = Config(database_url=None, data_dir=tmp_path, grpc_host="127.0.0.1", http_port=0)
    settings = dataclasses.replace(
        GatewaySettings.for_service(config, auth_stack.service.gateway_port),
        concurrency=1,
        tls_cert_file=pki.cert_file,
        tls_key_file=pki.key_file,
    )
    with (tmp_path / "envoy.log").open("wb") as log:
        gateway = start_gateway(settings, stderr=log)
    try:
        context = ssl.create_default_context(cadata=pki.ca.cert.decode())
        conn = http.client.HTTPSConnection("localhost", gateway.port, context=context, timeout=10)
        conn.request("GET", "/api/v1/audit/stats", headers=auth(auth_stack, "reader"))
        reply = conn.getresponse()
        assert reply.status == 200
        assert "total_events" in json.loads(reply.read())
        conn.close()
        plain = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
        with pytest.raises((http.client.HTTPException, ConnectionError, OSError)):
            plain.request("GET", "/health")
            plain.getresponse().read()
    finally:
        gateway.stop()
