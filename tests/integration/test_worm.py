"""WORM: PostgreSQL itself refuses to change or remove recorded events, for every role."""

from __future__ import annotations

import psycopg
import pytest

from auditlog.app import Service
from auditlog_client import AuditClient

STATEMENTS = {
    "UPDATE": "UPDATE audit_events SET user_id = 'mallory'",
    "DELETE": "DELETE FROM audit_events",
    "TRUNCATE": "TRUNCATE audit_events",
}


@pytest.fixture
def seeded(client: AuditClient) -> None:
    for i in range(3):
        client.create_event(event_type="user.login", action="login", user_id=f"u{i}")


@pytest.mark.parametrize("operation", list(STATEMENTS))
def test_owner_change_of_event_is_refused_by_trigger(
    seeded: None, database_url: str, client: AuditClient, operation: str
) -> None:
    refused = pytest.raises(psycopg.errors.InsufficientPrivilege, match=f"write-once \\(WORM\\): {operation}")
    with psycopg.connect(database_url) as conn, refused:
        conn.execute(STATEMENTS[operation])
    assert client.get_stats().total_events == 3
    assert client.verify_chain(verify_all=True).valid


@pytest.mark.parametrize("operation", list(STATEMENTS))
def test_service_role_lacks_privilege_to_change_events(
    seeded: None, database_url: str, operation: str
) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute("SET ROLE auditlog_service")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
            conn.execute(STATEMENTS[operation])


def test_service_runs_as_a_role_that_does_not_own_the_table(service: Service) -> None:
    with service.pool.connection() as conn:
        row = conn.execute(
            "SELECT current_user, tableowner,"
            " has_table_privilege(current_user, 'audit_events', 'INSERT'),"
            " has_table_privilege(current_user, 'audit_events', 'UPDATE'),"
            " has_table_privilege(current_user, 'audit_events', 'DELETE'),"
            " has_table_privilege(current_user, 'audit_events', 'TRUNCATE')"
            " FROM pg_tables WHERE tablename = 'audit_events'"
        ).fetchone()
    assert row is not None
    user, owner, can_insert, can_update, can_delete, can_truncate = row
    assert user == "auditlog_service" and owner != user
    assert (can_insert, can_update, can_delete, can_truncate) == (True, False, False, False)


def test_service_role_cannot_disable_the_triggers(seeded: None, database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute("SET ROLE auditlog_service")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="must be owner"):
            conn.execute("ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update")
