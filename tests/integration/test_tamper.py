"""Tampering as a superuser who bypasses the WORM triggers: verification finds the first bad
sequence and says what kind of break it is."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest

from audit.v1 import audit_service_pb2 as pb
from auditlog_client import AuditClient

EVENTS = 6


@pytest.fixture
def tamper(client: AuditClient, database_url: str) -> Callable[..., None]:
    for i in range(EVENTS):
        client.create_event(
            event_type="doc.edit", action="edit", user_id=f"u{i}", details={"n": i, "tags": ["a", "b"]}
        )
    assert client.verify_chain(verify_all=True).valid

    def run(*statements: str) -> None:
        with psycopg.connect(database_url) as conn:
            # Superuser only: fires no ordinary triggers for this session.
            conn.execute("SET session_replication_role = replica")
            for statement in statements:
                conn.execute(statement.encode())

    return run


def _first_break(client: AuditClient) -> tuple[int, int]:
    result = client.verify_chain(verify_all=True)
    assert not result.valid
    return result.first_bad_sequence, result.break_kind


def test_changed_column_is_a_leaf_hash_break_at_that_event(
    client: AuditClient, tamper: Callable[..., None]
) -> None:
    tamper("UPDATE audit_events SET user_id = 'mallory' WHERE sequence = 2")
    assert _first_break(client) == (2, pb.BREAK_KIND_LEAF_HASH)


def test_changed_details_value_is_a_leaf_hash_break(client: AuditClient, tamper: Callable[..., None]) -> None:
    tamper("""UPDATE audit_events SET details = '{"n": 3.5, "tags": ["a", "b"]}' WHERE sequence = 3""")
    assert _first_break(client) == (3, pb.BREAK_KIND_LEAF_HASH)


def test_changed_timestamp_is_a_leaf_hash_break(client: AuditClient, tamper: Callable[..., None]) -> None:
    tamper("UPDATE audit_events SET recorded_at = recorded_at + interval '1 microsecond' WHERE sequence = 1")
    assert _first_break(client) == (1, pb.BREAK_KIND_LEAF_HASH)


def test_deleted_middle_event_is_a_gap_at_its_sequence(
    client: AuditClient, tamper: Callable[..., None]
) -> None:
    tamper("DELETE FROM audit_events WHERE sequence = 3")
    assert _first_break(client) == (3, pb.BREAK_KIND_GAP)


def test_deleted_last_event_is_a_head_break_at_its_sequence(
    client: AuditClient, tamper: Callable[..., None]
) -> None:
    tamper(f"DELETE FROM audit_events WHERE sequence = {EVENTS - 1}")
    assert _first_break(client) == (EVENTS - 1, pb.BREAK_KIND_HEAD)


def test_swapped_pair_is_a_link_break_at_the_first_of_them(
    client: AuditClient, tamper: Callable[..., None]
) -> None:
    tamper(
        "UPDATE audit_events SET sequence = 1000 WHERE sequence = 2",
        "UPDATE audit_events SET sequence = 2 WHERE sequence = 3",
        "UPDATE audit_events SET sequence = 3 WHERE sequence = 1000",
    )
    assert _first_break(client) == (2, pb.BREAK_KIND_LINK)


def test_rewritten_chain_hash_is_a_chain_hash_break(client: AuditClient, tamper: Callable[..., None]) -> None:
    tamper("UPDATE audit_events SET chain_hash = sha256(chain_hash) WHERE sequence = 4")
    assert _first_break(client) == (4, pb.BREAK_KIND_CHAIN_HASH)


def test_row_appended_behind_the_sequencer_is_a_head_break(
    client: AuditClient, tamper: Callable[..., None]
) -> None:
    tamper(
        "INSERT INTO audit_events SELECT sequence + 1, gen_random_uuid(), event_type, user_id, action, resource_type,"
        " resource_id, details, risk_level, ip_address, user_agent, session_id, '', occurred_at, recorded_at,"
        f" leaf_hash, chain_hash, chain_hash FROM audit_events WHERE sequence = {EVENTS - 1}"
    )
    assert _first_break(client) == (EVENTS, pb.BREAK_KIND_HEAD)


def test_range_verification_reports_a_break_inside_the_range(
    client: AuditClient, tamper: Callable[..., None]
) -> None:
    tamper("UPDATE audit_events SET action = 'view' WHERE sequence = 4")
    assert client.verify_chain(start_sequence=0, end_sequence=3).valid
    result = client.verify_chain(start_sequence=3, end_sequence=5)
    assert (result.valid, result.first_bad_sequence, result.break_kind) == (False, 4, pb.BREAK_KIND_LEAF_HASH)
    assert result.events_checked == 2


def test_failed_verification_is_reported_by_stats(client: AuditClient, tamper: Callable[..., None]) -> None:
    tamper("DELETE FROM audit_events WHERE sequence = 1")
    client.verify_chain(verify_all=True)
    last = client.get_stats().last_verification
    assert not last.valid and last.first_bad_sequence == 1 and last.break_kind == pb.BREAK_KIND_GAP
