"""The api_keys table under least privilege: the service role reads keys, adds them and sets their
two dates; it cannot change a digest or a role, delete a key, or undo a revocation."""

from __future__ import annotations

import grpc
import psycopg
import pytest

from audit.v1 import key_service_pb2, key_service_pb2_grpc
from auditlog.app import Service
from auditlog.storage.postgres import api_keys


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE api_keys SET role = 'admin'",
        "UPDATE api_keys SET digest = digest",
        "UPDATE api_keys SET name = 'other'",
        "DELETE FROM api_keys",
        "TRUNCATE api_keys",
    ],
)
def test_the_service_role_cannot_alter_keys(service: Service, statement: str) -> None:
    with service.pool.connection() as conn:
        api_keys.create_key(conn, "k", "reader")
    with service.pool.connection() as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(statement)


def test_a_revocation_is_final_and_last_use_only_moves_forward(service: Service) -> None:
    with service.pool.connection() as conn:
        _, secret = api_keys.create_key(conn, "k", "writer")
        revoked = api_keys.revoke_key(conn, "k")
        assert api_keys.revoke_key(conn, "k").revoked_at == revoked.revoked_at
        assert api_keys.digest_of(secret) not in api_keys.valid_digests(conn)
    with (
        service.pool.connection() as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege, match="cannot be undone"),
    ):
        conn.execute("UPDATE api_keys SET revoked_at = NULL")
    with service.pool.connection() as conn:
        assert revoked.revoked_at is not None
        api_keys.touch(conn, ["k"], revoked.revoked_at)
        api_keys.touch(conn, ["k"], revoked.created_at)
        (listed,) = api_keys.list_keys(conn)
    assert listed.last_used_at == revoked.revoked_at


def test_with_auth_off_the_key_service_refuses_to_mint_keys(service: Service) -> None:
    """A server anyone may call must not mint keys that a server with auth on would honour."""
    with grpc.insecure_channel(f"127.0.0.1:{service.port}") as channel:
        keys = key_service_pb2_grpc.KeyServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            keys.CreateKey(key_service_pb2.CreateKeyRequest(name="sneaky", role="admin"), timeout=10)
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "AUDITLOG_AUTH=required" in (refused.value.details() or "")
        with pytest.raises(grpc.RpcError):
            keys.ListKeys(key_service_pb2.ListKeysRequest(), timeout=10)
    with service.pool.connection() as conn:
        assert api_keys.list_keys(conn) == []
