"""The tamper matrix of the verifiable log: a database owner who bypasses the WORM triggers, after
checkpoints were signed and anchored. Each change is found by VerifyChain with its kind and
position, and the ones the hash chain alone cannot see (truncation with the head moved back, a
consistent rewrite re-signed with another key) are BREAK_KIND_CHECKPOINT; the integrator then
refuses to sign."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from audit.v1 import audit_service_pb2 as pb
from auditlog.app import Service, create_service
from auditlog.checkpoints import SigningRefusedError
from auditlog_client import AuditClient
from tests.fix_db import create_database, drop_database, login_url
from tests.fix_server import server_config, stop_service
from tests.fix_vlog import sign_now

EVENTS = 6
ZERO = "\\x" + "00" * 32


def add_events(client: AuditClient, count: int, who: str = "u") -> None:
    for i in range(count):
        client.create_event(event_type="doc.edit", action="edit", user_id=f"{who}{i}", details={"n": i})


@pytest.fixture
def tamper(client: AuditClient, service: Service, database_url: str) -> Callable[..., None]:
    assert service.checkpointer is not None
    add_events(client, EVENTS)
    assert sign_now(service).tree_size == EVENTS
    assert client.verify_chain(verify_all=True).valid

    def run(*statements: str) -> None:
        with psycopg.connect(database_url) as conn:
            # The owner (a superuser here): no ordinary trigger fires for this session.
            conn.execute("SET session_replication_role = replica")
            for statement in statements:
                conn.execute(statement.encode())

    return run


def first_break(client: AuditClient) -> tuple[int, int]:
    result = client.verify_chain(verify_all=True)
    assert not result.valid
    return result.first_bad_sequence, result.break_kind


def head_back_to(sequence: int) -> str:
    """Moves the head back onto event sequence, as a careful forger would."""
    if sequence < 0:
        return f"UPDATE log_head SET sequence = -1, chain_hash = '{ZERO}', recorded_at = NULL"
    return (
        "UPDATE log_head SET sequence = e.sequence, chain_hash = e.chain_hash, recorded_at = e.recorded_at"
        f" FROM audit_events e WHERE e.sequence = {sequence}"
    )


@pytest.mark.parametrize(
    ("statements", "expected"),
    [
        (["UPDATE audit_events SET user_id = 'mallory' WHERE sequence = 2"], (2, pb.BREAK_KIND_LEAF_HASH)),
        (["DELETE FROM audit_events WHERE sequence = 3"], (3, pb.BREAK_KIND_GAP)),
        (["DELETE FROM audit_events WHERE sequence = 0"], (0, pb.BREAK_KIND_GAP)),
        (
            [
                "UPDATE audit_events SET sequence = 1000 WHERE sequence = 2",
                "UPDATE audit_events SET sequence = 2 WHERE sequence = 3",
                "UPDATE audit_events SET sequence = 3 WHERE sequence = 1000",
            ],
            (2, pb.BREAK_KIND_LINK),
        ),
        (
            [
                "INSERT INTO audit_events SELECT sequence + 1, gen_random_uuid(), event_type, user_id, action,"
                " resource_type, resource_id, details, risk_level, ip_address, user_agent, session_id, '',"
                " occurred_at, recorded_at, leaf_hash, chain_hash, chain_hash FROM audit_events"
                f" WHERE sequence = {EVENTS - 1}"
            ],
            (EVENTS, pb.BREAK_KIND_HEAD),
        ),
        # The tail removed and the head moved back: a consistent chain, but shorter than signed.
        (
            [f"DELETE FROM audit_events WHERE sequence >= {EVENTS - 2}", head_back_to(EVENTS - 3)],
            (EVENTS - 1, pb.BREAK_KIND_CHECKPOINT),
        ),
        (["TRUNCATE audit_events", head_back_to(-1)], (EVENTS - 1, pb.BREAK_KIND_CHECKPOINT)),
    ],
    ids=["column", "middle-delete", "first-delete", "swap", "forged-insert", "tail-delete", "truncate"],
)
def test_each_tampering_is_found_with_kind_and_position(
    client: AuditClient, tamper: Callable[..., None], statements: list[str], expected: tuple[int, int]
) -> None:
    tamper(*statements)
    assert first_break(client) == expected


def test_truncation_message_names_the_checkpoint(client: AuditClient, tamper: Callable[..., None]) -> None:
    tamper("TRUNCATE audit_events", head_back_to(-1))
    message = client.verify_chain(verify_all=True).message
    assert f"checkpoint of tree size {EVENTS}" in message and "only 0 events" in message


def test_a_fork_after_truncation_is_never_signed(
    client: AuditClient, service: Service, tamper: Callable[..., None]
) -> None:
    assert service.checkpointer is not None
    tamper(f"DELETE FROM audit_events WHERE sequence >= {EVENTS - 2}", head_back_to(EVENTS - 3))
    add_events(client, 5, who="fork")  # the log grows past the signed size on another history
    with pytest.raises(
        SigningRefusedError, match=f"not consistent with the signed checkpoint of size {EVENTS}"
    ):
        service.checkpointer.tick()
    with service.pool.connection() as conn:
        row = conn.execute("SELECT max(tree_size) FROM checkpoints").fetchone()
    assert row is not None and row[0] == EVENTS


@pytest.fixture
def other_log(admin_url: str, test_login: str, tmp_path: Path) -> Iterator[tuple[str, Service]]:
    """A second log with its own database and its own signing key."""
    url = create_database(admin_url)
    other = create_service(
        server_config(tmp_path / "other"), database_url=login_url(url, test_login), migration_url=url
    )
    try:
        yield url, other
    finally:
        stop_service(other, url)
        drop_database(admin_url, url)


def test_consistent_rewrite_resigned_with_another_key_is_a_checkpoint_break(
    client: AuditClient,
    service: Service,
    tamper: Callable[..., None],
    database_url: str,
    other_log: tuple[str, Service],
) -> None:
    other_url, other = other_log
    assert other.checkpointer is not None and service.checkpointer is not None
    with AuditClient(f"127.0.0.1:{other.port}") as other_client:
        add_events(other_client, EVENTS, who="forged")
        assert sign_now(other).tree_size == EVENTS
        assert other_client.verify_chain(verify_all=True).valid
    # Every table of the history replaced by the other log's, which is whole and signed.
    tamper("TRUNCATE audit_events, checkpoints, merkle_tiles")
    with psycopg.connect(other_url) as source, psycopg.connect(database_url) as sink:
        sink.execute("SET session_replication_role = replica")
        for table in ("audit_events", "checkpoints"):
            with (
                source.cursor().copy(f"COPY {table} TO STDOUT (FORMAT binary)".encode()) as out,
                sink.cursor().copy(f"COPY {table} FROM STDIN (FORMAT binary)".encode()) as into,
            ):
                for chunk in out:
                    into.write(chunk)
        head = source.execute("SELECT sequence, chain_hash, recorded_at FROM log_head").fetchone()
        assert head is not None
        sink.execute("UPDATE log_head SET sequence = %s, chain_hash = %s, recorded_at = %s", head)
    assert first_break(client) == (EVENTS - 1, pb.BREAK_KIND_CHECKPOINT)
    with pytest.raises(SigningRefusedError, match="not signed by this log's key"):
        service.checkpointer.tick()
