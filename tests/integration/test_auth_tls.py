"""Server TLS without client certificates, certificate rotation without a restart, and the first
admin key minted into the data directory when auth is required and no key exists."""

from __future__ import annotations

import dataclasses
import logging
import stat
from pathlib import Path

import grpc
import psycopg
import pytest

from auditlog.access import ADMIN_KEY_FILE
from auditlog.app import create_service
from auditlog_client import AuditClient
from tests.fix_auth import auth_config, make_pki, tls_channel
from tests.fix_db import login_url

GET_STATS = "/audit.v1.AuditService/GetStats"


def get_stats(channel: grpc.Channel, secret: str) -> grpc.StatusCode:
    try:
        channel.unary_unary(GET_STATS, None, None)(
            b"", metadata=(("authorization", f"Bearer {secret}"),), timeout=5
        )
    except grpc.RpcError as err:
        return err.code()
    return grpc.StatusCode.OK


def test_server_tls_rotates_without_restart_and_mints_the_first_admin_key(
    database_url: str, test_login: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    old = make_pki(tmp_path / "old")
    config = auth_config(tmp_path, None)
    access = dataclasses.replace(
        config.access, grpc_tls_cert_file=old.cert_file, grpc_tls_key_file=old.key_file
    )
    config = dataclasses.replace(config, access=access)
    service = create_service(
        config, database_url=login_url(database_url, test_login), migration_url=database_url
    )
    try:
        key_file = config.data_dir / ADMIN_KEY_FILE
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        secret = key_file.read_text().strip()
        assert secret.startswith("al_")
        assert str(key_file.resolve()) in caplog.text and secret not in caplog.text
        target = f"localhost:{service.port}"
        with tls_channel(target, old.ca.cert) as channel:
            assert get_stats(channel, secret) == grpc.StatusCode.OK
            assert get_stats(channel, "al_wrong") == grpc.StatusCode.UNAUTHENTICATED
        # New certificates from another CA, written over the same files.
        new = make_pki(tmp_path / "new")
        old.cert_file.write_bytes(new.cert_file.read_bytes())
        old.key_file.write_bytes(new.key_file.read_bytes())
        with tls_channel(target, new.ca.cert) as channel:
            assert get_stats(channel, secret) == grpc.StatusCode.OK
        with AuditClient(target, root_certificates=new.ca.cert, api_key=secret) as client:
            assert client.get_stats().total_events == 0
        with tls_channel(target, old.ca.cert) as channel:
            assert get_stats(channel, secret) == grpc.StatusCode.UNAVAILABLE
        with grpc.insecure_channel(f"127.0.0.1:{service.port}") as channel:
            assert get_stats(channel, secret) == grpc.StatusCode.UNAVAILABLE
    finally:
        service.stop(grace=2)
    # Last use, batched in memory, is written when the server stops at the latest.
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute("SELECT last_used_at FROM api_keys WHERE name = 'bootstrap-admin'").fetchone()
    assert row is not None and row[0] is not None
    # A second start finds a key and mints none.
    key_file.unlink()
    again = create_service(
        config, database_url=login_url(database_url, test_login), migration_url=database_url
    )
    again.stop(grace=2)
    assert not key_file.exists()
