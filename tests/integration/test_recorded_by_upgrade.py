"""Upgrading a log written before recorded_by (migrations up to 0006): migration 0009 labels its
rows canonical form version 1, they verify as before, and the events appended after the upgrade are
version 2 in the same chain."""

from __future__ import annotations

import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from auditlog.app import create_service
from auditlog.domain.canonical import ZERO_HASH, canonical_bytes, chain_hash, leaf_hash
from auditlog.domain.jcs import jcs_text
from auditlog.domain.schema import CLIENT_NAMES
from auditlog.storage.migrations import apply_migrations, migrations_dir
from auditlog_client import AuditClient
from tests.fix_server import server_config, stop_service

T0 = datetime(2024, 1, 1, tzinfo=UTC)
# The table's columns before migration 0009, in their order.
OLD_COLUMNS = (
    "sequence", "id", "event_type", "user_id", "action", "resource_type", "resource_id", "details",
    "risk_level", "ip_address", "user_agent", "session_id", "request_id", "occurred_at", "recorded_at",
    "leaf_hash", "prev_hash", "chain_hash",
)  # fmt: skip


def _write_version_1_log(url: str, count: int) -> bytes:
    """count events hashed as the service hashed them before recorded_by; the last chain hash."""
    prev = ZERO_HASH
    with psycopg.connect(url) as conn:
        for i in range(count):
            client: dict[str, Any] = {name: "" for name in CLIENT_NAMES} | {
                "event_type": "old.event",
                "action": f"a{i}",
                "user_id": "u",
                "details": {"i": float(i)},
                "occurred_at": None,
            }
            event_id, recorded_at = uuid.uuid4(), T0 + timedelta(seconds=i)
            leaf = leaf_hash(canonical_bytes(**client, id=event_id, sequence=i, recorded_at=recorded_at))
            values: dict[str, Any] = {
                **client,
                "details": jcs_text(client["details"]),
                "sequence": i,
                "id": event_id,
            }
            values |= {"recorded_at": recorded_at, "leaf_hash": leaf, "prev_hash": prev}
            prev = values["chain_hash"] = chain_hash(prev, leaf)
            conn.execute(
                sql.SQL("INSERT INTO audit_events ({}) VALUES ({})").format(
                    sql.SQL(", ").join(map(sql.Identifier, OLD_COLUMNS)),
                    sql.SQL(", ").join(sql.Placeholder() * len(OLD_COLUMNS)),
                ),
                [values[c] for c in OLD_COLUMNS],
            )
        conn.execute(
            "UPDATE log_head SET sequence = %s, chain_hash = %s, recorded_at = %s WHERE id = 1",
            (count - 1, prev, T0 + timedelta(seconds=count - 1)),
        )
    return prev


def test_rows_written_before_verify_as_version_1_beside_new_version_2_rows(
    database_url: str, tmp_path: Path
) -> None:
    old = tmp_path / "old-migrations"
    old.mkdir()
    for entry in migrations_dir().iterdir():
        if entry.name.endswith(".sql") and entry.name <= "0006":
            shutil.copyfile(str(entry), old / entry.name)
    apply_migrations(database_url, old)
    _write_version_1_log(database_url, 3)
    service = create_service(server_config(tmp_path), database_url=database_url, health_interval=0.2)
    try:
        with AuditClient(f"127.0.0.1:{service.port}") as client:
            assert client.verify_chain(verify_all=True).valid
            client.create_event(event_type="new", action="b")
            result = client.verify_chain(verify_all=True)
            assert result.valid and result.events_checked == 4
    finally:
        stop_service(service, database_url)
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT canonical_version, recorded_by FROM audit_events ORDER BY sequence"
        ).fetchall()
    assert rows == [(1, ""), (1, ""), (1, ""), (2, "")]
