"""The sequencer against real PostgreSQL: an append that cannot finish in time says so honestly."""

from __future__ import annotations

import time

import psycopg
import pytest

from auditlog.domain.event import NewEvent
from auditlog.errors import UnavailableError
from auditlog.sequencer import Sequencer
from auditlog.storage.database import create_pool
from auditlog.storage.events import EventStore
from auditlog.storage.migrations import apply_migrations


def test_append_blocked_past_its_timeout_is_unavailable_and_may_still_land(database_url: str) -> None:
    apply_migrations(database_url)
    pool = create_pool(database_url, max_size=4)
    sequencer = Sequencer(EventStore(pool))
    sequencer.start()
    try:
        with psycopg.connect(database_url) as blocker:
            # Another writer holds the head lock, so the sequencer's transaction waits behind it.
            blocker.execute("SELECT sequence FROM log_head WHERE id = 1 FOR UPDATE")
            with pytest.raises(
                UnavailableError, match="may still be recorded; retry with the same request_id"
            ):
                sequencer.append([NewEvent(event_type="a.b", action="x", request_id="slow-1")], timeout=0.5)
            blocker.rollback()
        deadline = time.monotonic() + 10
        while EventStore(pool).head().sequence < 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        # The append did land once the lock was free; a retry with its request_id returns it.
        (retry,) = sequencer.append([NewEvent(event_type="a.b", action="x", request_id="slow-1")])
        assert retry.sequence == 0
        assert EventStore(pool).head().sequence == 0
    finally:
        sequencer.stop()
        pool.close()
