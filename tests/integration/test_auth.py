"""Authentication and roles over gRPC: every method x every role x every kind of credential."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import grpc
import pytest
from google.protobuf.descriptor_pool import DescriptorPool
from google.rpc import code_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from grpc_status import rpc_status
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit.v1 import audit_service_pb2, event_pb2, key_service_pb2, key_service_pb2_grpc
from auditlog.api.auth import METHOD_ROLES, PUBLIC_METHODS, admits, needed_role
from auditlog.api.principal import Role
from auditlog_client import AuditClient
from auditlog_client.errors import PermissionDenied, Unauthenticated
from tests.fix_auth import AuthStack, tls_channel

_HANDLERS = {"/audit.v1.AuditService/SearchEvents", "/audit.v1.ExportService/DownloadExportContent"}
_BIDI = {m for m in METHOD_ROLES if "ServerReflection" in m}
DENIED = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
# Requests other than the empty one: a tail from now follows the log until the deadline, while one
# from a negative sequence is refused by the handler at once (INVALID_ARGUMENT: past authorization).
_REQUESTS = {
    "/audit.v1.AuditService/TailEvents": audit_service_pb2.TailEventsRequest(
        from_sequence=-1
    ).SerializeToString()
}


def call(channel: grpc.Channel, method: str, metadata: tuple[tuple[str, str], ...] = ()) -> grpc.StatusCode:
    """method with an empty request (valid bytes for every message) or its _REQUESTS one; the status it
    ends with."""
    identity = {"request_serializer": None, "response_deserializer": None}
    request = _REQUESTS.get(method, b"")
    try:
        if method in _BIDI:
            for _ in channel.stream_stream(method, **identity)(iter([b""]), metadata=metadata, timeout=10):
                pass
        elif method in _HANDLERS:
            for _ in channel.unary_stream(method, **identity)(request, metadata=metadata, timeout=10):
                pass
        else:
            channel.unary_unary(method, **identity)(request, metadata=metadata, timeout=10)
    except grpc.RpcError as err:
        return err.code()
    return grpc.StatusCode.OK


def bearer(secret: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {secret}"),)


@pytest.fixture(scope="module")
def plain(auth_stack: AuthStack) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(auth_stack.plain_target) as channel:
        yield channel


@pytest.mark.parametrize("method", sorted(METHOD_ROLES))
def test_every_method_refuses_missing_bad_and_revoked_keys(
    plain: grpc.Channel, auth_stack: AuthStack, method: str
) -> None:
    assert call(plain, method) == grpc.StatusCode.UNAUTHENTICATED
    assert call(plain, method, bearer("al_" + "a" * 52)) == grpc.StatusCode.UNAUTHENTICATED
    assert call(plain, method, (("authorization", "Basic dXNlcjpwYXNz"),)) == grpc.StatusCode.UNAUTHENTICATED
    assert call(plain, method, bearer(auth_stack.keys["revoked"])) == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("role", [role.value for role in Role])
@pytest.mark.parametrize("method", sorted(METHOD_ROLES))
def test_every_method_admits_exactly_its_roles_by_key_and_by_certificate(
    plain: grpc.Channel, auth_stack: AuthStack, method: str, role: str
) -> None:
    allowed = admits(needed_role(method), Role(role))
    by_key = call(plain, method, bearer(auth_stack.keys[role]))
    pki = auth_stack.pki
    with tls_channel(auth_stack.tls_target, pki.ca.cert, pki.clients[role]) as channel:
        by_cert = call(channel, method)
    for code in (by_key, by_cert):
        if allowed:
            assert code not in DENIED, (method, role, by_key, by_cert)
        else:
            assert code == grpc.StatusCode.PERMISSION_DENIED, (method, role, code)


def test_an_unmapped_certificate_is_unauthenticated_and_one_without_a_client_certificate_cannot_connect(
    auth_stack: AuthStack,
) -> None:
    pki = auth_stack.pki
    with tls_channel(auth_stack.tls_target, pki.ca.cert, pki.clients["stranger"]) as channel:
        assert call(channel, "/audit.v1.AuditService/GetStats") == grpc.StatusCode.UNAUTHENTICATED
        # A key on a TLS connection counts as well.
        code = call(channel, "/audit.v1.AuditService/GetStats", bearer(auth_stack.keys["reader"]))
        assert code == grpc.StatusCode.OK
    with tls_channel(auth_stack.tls_target, pki.ca.cert) as channel:
        assert call(channel, "/audit.v1.AuditService/GetStats") == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("method", sorted(PUBLIC_METHODS - {"/grpc.health.v1.Health/Watch"}))
def test_health_needs_no_credentials(plain: grpc.Channel, method: str) -> None:
    assert call(plain, method) not in DENIED


def test_refusals_have_the_error_shape_and_name_the_role_needed(
    plain: grpc.Channel, auth_stack: AuthStack
) -> None:
    get_stats = plain.unary_unary("/audit.v1.AuditService/GetStats", None, None)
    with pytest.raises(grpc.RpcError) as missing:
        get_stats(b"", timeout=10)
    status = rpc_status.from_call(missing.value)
    assert status is not None and status.code == code_pb2.UNAUTHENTICATED
    assert status.message.startswith("missing credentials")
    assert dict(missing.value.trailing_metadata()).get("x-request-id")
    with pytest.raises(grpc.RpcError) as bad:
        get_stats(b"", metadata=bearer("al_nope"), timeout=10)
    assert bad.value.details() == "invalid credentials"
    with pytest.raises(grpc.RpcError) as denied:
        get_stats(b"", metadata=bearer(auth_stack.keys["writer"]), timeout=10)
    status = rpc_status.from_call(denied.value)
    assert status is not None and status.code == code_pb2.PERMISSION_DENIED
    assert "GetStats needs role reader" in status.message


def test_every_method_of_every_registered_service_is_in_the_table(channel: grpc.Channel) -> None:
    """Through reflection of a service (auth off: the same services are registered either way)."""
    database = ProtoReflectionDescriptorDatabase(channel)
    pool = DescriptorPool(database)
    methods = {
        f"/{name}/{method.name}"
        for name in database.get_services()
        for method in pool.FindServiceByName(name).methods
    }
    assert "/audit.v1.KeyService/CreateKey" in methods
    assert methods - set(METHOD_ROLES) - PUBLIC_METHODS == set()


def test_a_method_missing_from_the_table_needs_admin() -> None:
    assert needed_role("/audit.v1.AuditService/SomethingNew") is Role.ADMIN
    assert not admits(needed_role("/x.Y/Z"), Role.AUDITOR)


def test_keys_made_and_revoked_over_the_api_take_effect_at_once(
    plain: grpc.Channel, auth_stack: AuthStack
) -> None:
    admin = bearer(auth_stack.keys["admin"])
    keys = key_service_pb2_grpc.KeyServiceStub(plain)
    made = keys.CreateKey(key_service_pb2.CreateKeyRequest(name="api-writer", role="writer"), metadata=admin)
    assert made.secret.startswith("al_") and len(made.secret) >= 3 + 26
    assert made.key.role == "writer" and not made.key.HasField("revoked_at")
    create = plain.unary_unary(
        "/audit.v1.AuditService/CreateEvent",
        request_serializer=audit_service_pb2.CreateEventRequest.SerializeToString,
        response_deserializer=event_pb2.AuditEvent.FromString,
    )
    request = audit_service_pb2.CreateEventRequest(
        event=event_pb2.EventInput(event_type="key.test", action="create")
    )
    assert create(request, metadata=bearer(made.secret), timeout=10).event_type == "key.test"
    listed = keys.ListKeys(key_service_pb2.ListKeysRequest(), metadata=admin).keys
    assert "api-writer" in [k.name for k in listed]
    assert all("secret" not in str(k) and made.secret not in str(k) for k in listed)
    revoked = keys.RevokeKey(key_service_pb2.RevokeKeyRequest(name="api-writer"), metadata=admin)
    assert revoked.HasField("revoked_at")
    with pytest.raises(grpc.RpcError) as refused:
        create(request, metadata=bearer(made.secret), timeout=10)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as taken:
        keys.CreateKey(key_service_pb2.CreateKeyRequest(name="api-writer", role="bogus"), metadata=admin)
    assert taken.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "role: got 'bogus', want one of writer, reader, auditor, admin" in taken.value.details()


def test_a_key_revoked_in_the_database_is_refused_within_a_second(
    plain: grpc.Channel, auth_stack: AuthStack
) -> None:
    """As `auditlog keys revoke` does it: on the database, not through this server process."""
    import psycopg

    from auditlog.storage.postgres import api_keys

    with psycopg.connect(auth_stack.database_url, autocommit=True) as conn:
        _, secret = api_keys.create_key(conn, "elsewhere", "reader")
    time.sleep(1.2)
    assert call(plain, "/audit.v1.AuditService/GetStats", bearer(secret)) == grpc.StatusCode.OK
    with psycopg.connect(auth_stack.database_url, autocommit=True) as conn:
        api_keys.revoke_key(conn, "elsewhere")
    time.sleep(1.0)
    assert call(plain, "/audit.v1.AuditService/GetStats", bearer(secret)) == grpc.StatusCode.UNAUTHENTICATED


def _count(database_url: str) -> int:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM audit_events").fetchone()
    assert row is not None
    return int(row[0])


_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=120)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    value=st.one_of(_TEXT, _TEXT.map(lambda s: "Bearer " + s), _TEXT.map(lambda s: "bearer al_" + s)),
    method=st.sampled_from(sorted(set(METHOD_ROLES) - _BIDI)),
)
def test_random_credentials_never_reach_a_handler(
    plain: grpc.Channel, auth_stack: AuthStack, value: str, method: str
) -> None:
    before = _count(auth_stack.database_url)
    create = plain.unary_unary("/audit.v1.AuditService/CreateEvent", None, None)
    request = audit_service_pb2.CreateEventRequest(event=event_pb2.EventInput(event_type="x.y", action="a"))
    with pytest.raises(grpc.RpcError) as refused:
        create(request.SerializeToString(), metadata=(("authorization", value),), timeout=10)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert call(plain, method, (("authorization", value),)) == grpc.StatusCode.UNAUTHENTICATED
    assert _count(auth_stack.database_url) == before


def test_no_key_reaches_the_log(
    plain: grpc.Channel, auth_stack: AuthStack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for role in ("writer", "reader", "revoked"):
        for method in sorted(METHOD_ROLES)[:8]:
            call(plain, method, bearer(auth_stack.keys[role]))
    call(plain, "/audit.v1.AuditService/GetStats", bearer(auth_stack.keys["writer"] + "x"))
    assert "UNAUTHENTICATED" in caplog.text and "PERMISSION_DENIED" in caplog.text
    for secret in auth_stack.keys.values():
        assert secret not in caplog.text
        assert secret[3:20] not in caplog.text


def test_the_python_client_and_auditctl_send_a_key(auth_stack: AuthStack) -> None:
    with AuditClient(auth_stack.plain_target, api_key=auth_stack.keys["reader"]) as client:
        assert client.get_stats().total_events >= 0
        assert list(client.search_events(event_type="none.such")) == []
        with pytest.raises(PermissionDenied, match="CreateEvent needs role writer"):
            client.create_event(event_type="a.b", action="c")
    with AuditClient(auth_stack.plain_target) as client, pytest.raises(Unauthenticated):
        client.get_stats()
    env = {**os.environ, "AUDITLOG_API_KEY": auth_stack.keys["auditor"]}
    command = [sys.executable, "-m", "auditlog_client.cli", "--target", auth_stack.plain_target, "stats"]
    ok = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert ok.returncode == 0, ok.stderr
    env.pop("AUDITLOG_API_KEY")
    refused = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode != 0 and "missing credentials" in refused.stderr
