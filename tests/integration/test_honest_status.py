"""Honest status: a range check says which events it vouches for and never stands in for a check
of the whole log, and a verification result written around the verifier is not reported."""

from __future__ import annotations

import stat
from pathlib import Path

import psycopg
import pytest

from audit.v1 import audit_service_pb2 as pb
from auditlog.app import Service
from auditlog_client import AuditClient

EVENTS = 6


@pytest.fixture
def broken_log(client: AuditClient, database_url: str) -> None:
    """A log whose event 4 was changed behind the service's back, verified whole once (a failure)."""
    for i in range(EVENTS):
        client.create_event(event_type="doc.edit", action="edit", user_id=f"u{i}")
    with psycopg.connect(database_url) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute("UPDATE audit_events SET action = 'view' WHERE sequence = 4")
    assert not client.verify_chain(verify_all=True).valid


def test_a_range_check_names_its_range_and_does_not_replace_the_failed_whole_log_check(
    broken_log: None, client: AuditClient
) -> None:
    ranged = client.verify_chain(start_sequence=0, end_sequence=3)
    assert ranged.valid and ranged.message == "events 0 to 3 are intact: 4 events checked"
    stats = client.get_stats()
    whole = stats.last_verification
    assert (whole.valid, whole.verify_all, whole.first_bad_sequence) == (False, True, 4)
    assert whole.break_kind == pb.BREAK_KIND_LEAF_HASH and "event 4" in whole.message
    assert stats.last_failure == whole


def test_a_range_reaching_the_head_says_so_and_is_not_the_whole_log(
    broken_log: None, client: AuditClient
) -> None:
    tail = client.verify_chain(start_sequence=5)
    assert tail.valid and tail.message == "events 5 to 5 (the head) are intact: 1 event checked"
    assert not client.get_stats().last_verification.valid


def test_a_failed_range_check_is_the_last_failure_but_not_the_last_whole_log_check(
    broken_log: None, client: AuditClient
) -> None:
    failed = client.verify_chain(start_sequence=3, end_sequence=5)
    assert not failed.valid
    stats = client.get_stats()
    assert stats.last_verification.verify_all and stats.last_verification.start_sequence == 0
    failure = stats.last_failure
    assert not failure.verify_all and (failure.start_sequence, failure.end_sequence) == (3, 4)
    assert failure.verified_at.ToDatetime() >= stats.last_verification.verified_at.ToDatetime()


def test_a_later_passing_whole_log_check_keeps_the_earlier_failure(
    broken_log: None, client: AuditClient, database_url: str
) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute("UPDATE audit_events SET action = 'edit' WHERE sequence = 4")
    assert client.verify_chain(verify_all=True).valid
    stats = client.get_stats()
    assert stats.last_verification.valid and stats.last_verification.message.startswith("the whole log")
    assert not stats.last_failure.valid and stats.last_failure.first_bad_sequence == 4


def _forge(database_url: str, mac: str | None) -> None:
    """A passing whole-log result dated in the future, inserted as the service's database role."""
    with psycopg.connect(database_url) as conn:
        conn.execute("SET ROLE auditlog_service")
        conn.execute(
            "INSERT INTO verifications (verified_at, verify_all, valid, events_checked, break_kind,"
            " message, mac) VALUES (now() + interval '1 hour', true, true, 6, '',"
            " 'the whole log is intact: 6 events checked', %s)",
            (None if mac is None else bytes.fromhex(mac),),
        )


def test_a_result_forged_as_the_service_role_is_not_reported(
    broken_log: None, client: AuditClient, database_url: str
) -> None:
    _forge(database_url, "00" * 32)
    stats = client.get_stats()
    assert not stats.last_verification.valid and stats.last_verification.first_bad_sequence == 4
    assert stats.rejected_verification_records == 1


def test_an_unsigned_result_cannot_be_inserted(broken_log: None, database_url: str) -> None:
    with pytest.raises(psycopg.errors.CheckViolation, match="verifications_signed"):
        _forge(database_url, None)


def test_the_signing_key_is_readable_by_its_owner_only(service: Service, tmp_path: Path) -> None:
    key = tmp_path / "data" / "verification.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and len(key.read_bytes()) == 32


def test_results_signed_before_a_restart_still_count(
    client: AuditClient, database_url: str, tmp_path: Path
) -> None:
    from auditlog.app import create_service
    from tests.fix_server import server_config, stop_service

    client.create_event(event_type="doc.edit", action="edit")
    assert client.verify_chain(verify_all=True).valid
    again = create_service(server_config(tmp_path), database_url=database_url)
    try:
        with AuditClient(f"127.0.0.1:{again.port}") as other:
            stats = other.get_stats()
        assert stats.last_verification.valid and stats.rejected_verification_records == 0
    finally:
        stop_service(again, database_url, grace=1)
