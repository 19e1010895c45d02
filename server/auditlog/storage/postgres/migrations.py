"""Applies the package's migrations/NNNN_name.sql in order, each once, recorded in schema_migrations.

Runs as the owner role at start-up under an advisory lock, so several processes starting together
apply each migration exactly once.
"""

from __future__ import annotations

import logging
import re
from importlib.resources import files
from importlib.resources.abc import Traversable

import psycopg

_log = logging.getLogger(__name__)
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_LOCK_KEY = 0x6175646974  # "audit"


def migrations_dir() -> Traversable:
    """The migrations shipped as package data (auditlog/migrations), installed or in the source tree."""
    return files("auditlog") / "migrations"


def discover(directory: Traversable) -> list[tuple[int, str, Traversable]]:
    found = []
    for path in sorted(directory.iterdir(), key=lambda entry: entry.name):
        if not path.name.endswith(".sql"):
            continue
        match = _NAME.match(path.name)
        if not match:
            raise RuntimeError(f"migration file name {path.name!r} is not NNNN_name.sql")
        found.append((int(match.group(1)), path.name.removesuffix(".sql"), path))
    versions = [v for v, _, _ in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError("two migrations share a number")
    return found


def apply_migrations(url: str, directory: Traversable | None = None) -> list[str]:
    """Applies pending migrations; returns the names applied."""
    directory = directory or migrations_dir()
    applied: list[str] = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            for version, name, path in discover(directory):
                if version in done:
                    continue
                with conn.transaction():
                    # A whole script: bytes with no parameters may hold several statements.
                    conn.execute(path.read_bytes())
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name)
                    )
                _log.info("applied migration %s", name)
                applied.append(name)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied
