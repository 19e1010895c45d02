"""Keys the service keeps in its database, so that every server process sharing it uses the same."""

from __future__ import annotations

import psycopg


def read_page_token_key(conn: psycopg.Connection) -> bytes:
    """The page token HMAC key (made once by migration 0006)."""
    row = conn.execute("SELECT secret FROM page_token_key WHERE id = 1").fetchone()
    if row is None:
        raise RuntimeError("the page token key is missing from the database (table page_token_key)")
    return bytes(row[0])
