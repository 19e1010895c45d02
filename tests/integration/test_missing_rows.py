"""A database missing a row the schema guarantees (the log head) fails with an error that names it,
and the checks are real code, not asserts that `python -O` strips."""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from auditlog.storage.postgres.database import MissingRowError, create_pool
from auditlog.storage.postgres.migrations import apply_migrations
from auditlog.storage.postgres.reader import EventStore
from auditlog.storage.postgres.verification import verification_snapshot

SERVER = Path(__file__).resolve().parents[2] / "server"


def test_server_code_has_no_assert_statements() -> None:
    found = [
        f"{path.relative_to(SERVER)}:{node.lineno}"
        for path in sorted(SERVER.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.Assert)
    ]
    assert found == []


def test_a_missing_log_head_row_is_named_by_every_reader(database_url: str) -> None:
    apply_migrations(database_url)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM log_head")
    pool = create_pool(database_url, min_size=1, max_size=2)
    pool.open(wait=True)
    try:
        store = EventStore(pool)
        for read in (store.head, store.head_and_tail, lambda: store.stats(datetime.now(UTC))):
            with pytest.raises(MissingRowError, match=r"^the log_head row is missing from the database"):
                read()
        with (
            pytest.raises(MissingRowError, match=r"^the log_head row is missing"),
            verification_snapshot(pool, 0),
        ):
            pass
    finally:
        pool.close()
