"""Commits announce the head (NOTIFY) only while some server process follows the log: a process
listens, and holds the lock that turns the announcements on, only while it has a live tail."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest

from auditlog.api.tail import TailHub
from auditlog.storage.postgres.database import create_pool
from auditlog.storage.postgres.head_listener import CHANNEL, LISTENING_LOCK, HeadListener
from auditlog.storage.postgres.migrations import apply_migrations
from auditlog_client import AuditClient
from tests.fix_serve import wait_until

_HELD = (
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s AND objsubid = 1"
    " AND mode = 'ShareLock' AND granted"
)


def listening_locks(conn: psycopg.Connection[tuple[int]]) -> int:
    row = conn.execute(_HELD, (LISTENING_LOCK,)).fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
def listener_conn(database_url: str) -> Iterator[psycopg.Connection[tuple[int]]]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"LISTEN {CHANNEL}")
        yield conn


def announced(conn: psycopg.Connection[tuple[int]], timeout: float) -> list[str]:
    return [n.payload for n in conn.notifies(timeout=timeout)]


def test_commits_announce_the_head_only_while_a_tail_follows(
    client: AuditClient, listener_conn: psycopg.Connection[tuple[int]]
) -> None:
    client.create_event(event_type="gate.test", action="unfollowed")
    assert announced(listener_conn, 0.5) == []  # nobody tails: the commit sent no NOTIFY

    stop = threading.Event()
    seen: list[int] = []

    def follow() -> None:
        # The test's end closes the client under the tail: whatever it raises then is not the test's.
        with contextlib.suppress(Exception):
            for event in client.tail_events():
                seen.append(event.sequence)
                if stop.is_set():
                    return

    threading.Thread(target=follow, daemon=True).start()
    wait_until(lambda: listening_locks(listener_conn) == 1)
    recorded = client.create_event(event_type="gate.test", action="followed")
    assert announced(listener_conn, 2.0) == [str(recorded.sequence)]
    wait_until(lambda: seen == [recorded.sequence])
    stop.set()
    client.create_event(event_type="gate.test", action="ends the tail")


def test_the_listener_holds_the_lock_while_tails_follow_and_lets_go_after(database_url: str) -> None:
    apply_migrations(database_url)
    hub = TailHub()
    with (
        create_pool(database_url, min_size=1, max_size=1) as pool,
        psycopg.connect(database_url, autocommit=True) as conn,
    ):
        listener = HeadListener(pool, hub, linger=0.2)
        listener.start()
        try:
            assert listening_locks(conn) == 0
            with hub.following():
                wait_until(lambda: listening_locks(conn) == 1)
            wait_until(lambda: listening_locks(conn) == 0)  # the last tail ended, the linger passed
            with hub.following():
                wait_until(lambda: listening_locks(conn) == 1)  # and it comes back for the next
        finally:
            listener.stop()
        wait_until(lambda: listening_locks(conn) == 0)


def test_stopping_the_listener_does_not_wait_for_its_next_look_up(database_url: str) -> None:
    apply_migrations(database_url)
    with (
        create_pool(database_url, min_size=1, max_size=1) as pool,
        psycopg.connect(database_url, autocommit=True) as conn,
    ):
        for following in (False, True):
            hub = TailHub()
            listener = HeadListener(pool, hub)
            listener.start()
            with contextlib.ExitStack() as tails:
                if following:
                    tails.enter_context(hub.following())
                    wait_until(lambda: listening_locks(conn) == 1)
                time.sleep(0.2)  # into the listener's one-second wait
                started = time.monotonic()
                listener.stop()
                assert time.monotonic() - started < 0.5
            wait_until(lambda: listening_locks(conn) == 0)


def test_a_forged_announcement_makes_no_tail_skip_events(
    client: AuditClient, listener_conn: psycopg.Connection[tuple[int]]
) -> None:
    seen: list[int] = []

    def follow() -> None:
        # The test's end closes the client under the tail: whatever it raises then is not the test's.
        with contextlib.suppress(Exception):
            for event in client.tail_events():
                seen.append(event.sequence)

    threading.Thread(target=follow, daemon=True).start()
    wait_until(lambda: listening_locks(listener_conn) == 1)
    # Anyone who can connect may NOTIFY the channel: the tail must not take it for the head.
    listener_conn.execute("SELECT pg_notify(%s, '999999999')", (CHANNEL,))
    time.sleep(0.3)
    sequences = [client.create_event(event_type="gate.test", action="after").sequence for _ in range(3)]
    wait_until(lambda: seen == sequences)
