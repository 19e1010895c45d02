"""The sequencer against real PostgreSQL: an append that cannot finish in time says so honestly,
and the write path's shortcuts (held connection, one-round-trip writes, idempotency by the unique
index) never lose or duplicate an event."""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest

from auditlog.domain.chain import prepare_event
from auditlog.domain.event import NewEvent
from auditlog.errors import DatabaseUnavailableError, ShuttingDownError, UnavailableError
from auditlog.sequencer import ONE_TRIP_MAX_EVENTS, Sequencer
from auditlog.storage.postgres.database import create_pool, database_errors
from auditlog.storage.postgres.migrations import apply_migrations
from auditlog.storage.postgres.reader import EventStore
from auditlog.storage.postgres.writer import AppendConnection


@contextmanager
def running(database_url: str, max_size: int = 4) -> Iterator[tuple[Sequencer, EventStore]]:
    """A started sequencer on its own pool (as one server process has), stopped and closed after."""
    pool = create_pool(database_url, max_size=max_size)
    store = EventStore(pool)
    sequencer = Sequencer(store.writer())
    sequencer.start()
    try:
        yield sequencer, store
    finally:
        sequencer.stop()
        pool.close()


@pytest.fixture
def migrated(database_url: str) -> str:
    apply_migrations(database_url)
    return database_url


@pytest.fixture
def sequencer_and_store(migrated: str) -> Iterator[tuple[Sequencer, EventStore]]:
    with running(migrated) as started:
        yield started


def test_append_blocked_past_its_timeout_is_unavailable_and_may_still_land(
    database_url: str, sequencer_and_store: tuple[Sequencer, EventStore]
) -> None:
    sequencer, store = sequencer_and_store
    with psycopg.connect(database_url) as blocker:
        # Another writer holds the head lock, so the sequencer's transaction waits behind it.
        blocker.execute("SELECT sequence FROM log_head WHERE id = 1 FOR UPDATE")
        with pytest.raises(UnavailableError, match="may still be recorded; retry with the same request_id"):
            sequencer.append([NewEvent(event_type="a.b", action="x", request_id="slow-1")], timeout=0.5)
        blocker.rollback()
    deadline = time.monotonic() + 10
    while store.head().sequence < 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    # The append did land once the lock was free; a retry with its request_id returns it.
    (retry,) = sequencer.append([NewEvent(event_type="a.b", action="x", request_id="slow-1")])
    assert retry.sequence == 0
    assert store.head().sequence == 0


def test_the_held_connection_is_replaced_when_postgres_dropped_it(
    database_url: str, sequencer_and_store: tuple[Sequencer, EventStore]
) -> None:
    """The sequencer keeps its connection between batches; one that died meanwhile (a restart, an
    idle timeout, an operator's pg_terminate_backend) costs the next append nothing visible."""
    sequencer, _ = sequencer_and_store
    (first,) = sequencer.append([NewEvent(event_type="a.b", action="before")])
    with psycopg.connect(database_url, autocommit=True) as admin:
        killed = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = 'auditlog' AND pid <> pg_backend_pid()"
        ).fetchone()
    assert killed is not None and killed[0] >= 1
    (second,) = sequencer.append([NewEvent(event_type="a.b", action="after")], timeout=10)
    assert (first.sequence, second.sequence) == (0, 1)
    assert second.prev_hash == first.chain_hash


def test_a_batch_mixing_callers_retries_and_new_events_writes_each_new_event_once(
    database_url: str, sequencer_and_store: tuple[Sequencer, EventStore]
) -> None:
    """Group commit puts several callers in one transaction; a retry of a recorded event among them
    (refused by the unique request_id index, then looked up) changes nothing for the others."""
    sequencer, store = sequencer_and_store
    (original,) = sequencer.append([NewEvent(event_type="a.b", action="first", request_id="r-1")])
    new = [
        NewEvent(event_type="a.b", action="new", request_id="r-2"),
        NewEvent(event_type="a.b", action="x"),
    ]
    retry = [NewEvent(event_type="a.b", action="first", request_id="r-1")]
    first_caller, second_caller = sequencer.append_batch(
        [[prepare_event(e, uuid.uuid4()) for e in new], [prepare_event(e, uuid.uuid4()) for e in retry]]
    )
    assert [r.sequence for r in first_caller] == [1, 2]
    assert first_caller[0].prev_hash == original.chain_hash
    assert second_caller == [original]
    head = store.head()
    assert (head.sequence, head.chain_hash) == (2, first_caller[1].chain_hash)
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT request_id FROM audit_events ORDER BY sequence").fetchall()
    assert [r[0] for r in rows] == ["r-1", "r-2", ""]


def test_a_head_moved_by_another_process_is_noticed_and_nothing_is_written_twice(migrated: str) -> None:
    """Each sequencer writes a small batch in one round trip on the head it last committed; when
    another process moved the head meanwhile, that write changes nothing and the batch is written
    again under the head lock, after the other process's events."""
    with running(migrated, max_size=2) as (first, store), running(migrated, max_size=2) as (second, _):
        actions = ["a1", "b1", "a2", "a3", "b2", "a4"]
        recorded = [
            (first if action.startswith("a") else second).append([NewEvent(event_type="x.y", action=action)])[
                0
            ]
            for action in actions
        ]
        assert [r.sequence for r in recorded] == list(range(len(actions)))
        for before, after in itertools.pairwise(recorded):
            assert after.prev_hash == before.chain_hash
        with psycopg.connect(migrated) as conn:
            rows = conn.execute("SELECT action FROM audit_events ORDER BY sequence").fetchall()
        assert [r[0] for r in rows] == actions
        head = store.head()
        assert (head.sequence, head.chain_hash) == (5, recorded[-1].chain_hash)


def test_a_batch_committed_before_its_connection_failed_is_answered_once(
    database_url: str, sequencer_and_store: tuple[Sequencer, EventStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one-round-trip write sends COMMIT with the rest; if the connection then fails, whether
    the batch committed is looked up by its first id: committed, the callers get their events and
    nothing is written again."""
    sequencer, _ = sequencer_and_store
    real = AppendConnection.append_at_once

    def commit_then_fail(self: AppendConnection, *args: Any, **kwargs: Any) -> bool:
        real(self, *args, **kwargs)
        raise DatabaseUnavailableError from psycopg.OperationalError(
            "server closed the connection unexpectedly"
        )

    sequencer.append([NewEvent(event_type="a.b", action="warm")])  # the head is now known
    # Through the storage boundary, as the real method's failures go.
    monkeypatch.setattr(AppendConnection, "append_at_once", database_errors()(commit_then_fail))
    (event,) = sequencer.append([NewEvent(event_type="a.b", action="once")])
    assert event.sequence == 1
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT action FROM audit_events ORDER BY sequence").fetchall()
    assert [r[0] for r in rows] == ["warm", "once"]


def test_a_large_batch_with_a_retry_among_new_events_is_copied_once(
    database_url: str, sequencer_and_store: tuple[Sequencer, EventStore]
) -> None:
    """Batches past ONE_TRIP_MAX_EVENTS go by COPY; a retry of a recorded event inside one makes the
    unique index refuse the COPY, and the batch is redone with the lookup."""
    sequencer, _ = sequencer_and_store
    (original,) = sequencer.append([NewEvent(event_type="a.b", action="first", request_id="dup")])
    batch = [
        NewEvent(event_type="a.b", action=f"n{i}", request_id=f"r-{i}")
        for i in range(ONE_TRIP_MAX_EVENTS + 36)
    ]
    batch[50] = NewEvent(event_type="a.b", action="retried", request_id="dup")
    recorded = sequencer.append(batch)
    assert recorded[50] == original
    new = [r for i, r in enumerate(recorded) if i != 50]
    assert [r.sequence for r in new] == list(range(1, len(batch)))
    for before, after in itertools.pairwise([original, *new]):
        assert after.prev_hash == before.chain_hash
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*), count(DISTINCT request_id) FROM audit_events").fetchone()
        # Each stored row is its record (the COPY text the caller made lines up with the record the
        # sequencer built, the retry skipped in both).
        stored = conn.execute("SELECT sequence, id, action FROM audit_events ORDER BY sequence").fetchall()
    assert row == (len(batch), len(batch))
    assert stored == [(r.sequence, r.id, r.action) for r in [original, *new]]


def test_submit_answers_through_a_future_only_after_the_commit_and_refuses_once_stopping(
    database_url: str, migrated: str
) -> None:
    with running(migrated) as (sequencer, store), psycopg.connect(database_url) as blocker:
        # Another writer holds the head lock: the batch cannot commit, and the future stays open.
        blocker.execute("SELECT sequence FROM log_head WHERE id = 1 FOR UPDATE")
        future = sequencer.submit([NewEvent(event_type="a.b", action="x", request_id="submitted-1")])
        time.sleep(0.3)
        assert not future.done()
        blocker.rollback()
        (record,) = future.result(timeout=10)
        assert store.get(record.id) == record
        sequencer.stop()
        with pytest.raises(ShuttingDownError):
            sequencer.submit([NewEvent(event_type="a.b", action="x")])


def test_a_one_trip_batch_of_large_events_is_written_in_bounded_time(
    sequencer_and_store: tuple[Sequencer, EventStore],
) -> None:
    sequencer, store = sequencer_and_store
    sequencer.append([NewEvent(event_type="a.b", action="warm")])  # the head is known: one trip next
    events = [NewEvent(event_type="a.b", action="big", details={"blob": "<" * 60_000}) for _ in range(40)]
    assert len(events) <= ONE_TRIP_MAX_EVENTS
    # Several MB of parameters in one pipeline: before, libpq kept the tail unsent and waited for results.
    recorded = sequencer.append(events, timeout=20)
    assert [r.sequence for r in recorded] == list(range(1, 41))
    assert store.get(recorded[-1].id) is not None


def test_a_locked_batch_naming_many_long_user_ids_is_written_in_bounded_time(
    sequencer_and_store: tuple[Sequencer, EventStore],
) -> None:
    sequencer, store = sequencer_and_store
    events = [NewEvent(event_type="a.b", action="x", user_id=f"{i:05d}" + "u" * 250) for i in range(10_000)]
    assert len(events) > ONE_TRIP_MAX_EVENTS
    # Half a MB of user ids go to user_hours in the pipeline that commits.
    recorded = sequencer.append(events, timeout=20)
    assert len(recorded) == 10_000
    assert store.get(recorded[-1].id) is not None
