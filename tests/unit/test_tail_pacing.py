"""A tail reads the log page by page as its caller takes messages (a slow caller holds one page,
never the backlog), wakes when the head moves, and ends with UNAVAILABLE when the server drains."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from auditlog.api.tail import TailHub, tail_messages
from auditlog.domain.event import NewEvent
from auditlog.domain.filters import EventFilter
from auditlog.errors import ShuttingDownError
from auditlog.sequencer import Sequencer
from auditlog.storage.memory import MemoryLog


def clock() -> datetime:
    return datetime(2024, 5, 1, 12, tzinfo=UTC)


class CountingLog(MemoryLog):
    def __init__(self) -> None:
        super().__init__()
        self.rows_read = 0

    def search_page(self, *args: Any, **kwargs: Any) -> Any:
        rows = super().search_page(*args, **kwargs)
        self.rows_read += len(rows)
        return rows


@pytest.fixture
def log() -> CountingLog:
    return CountingLog()


@pytest.fixture
def sequencer(log: CountingLog) -> Iterator[Sequencer]:
    seq = Sequencer(log, clock=clock)
    seq.start()
    yield seq
    seq.stop()


def append(sequencer: Sequencer, count: int) -> None:
    sequencer.append([NewEvent(event_type="t", action="a") for _ in range(count)])


def test_a_slow_caller_is_paced_page_by_page(log: CountingLog, sequencer: Sequencer) -> None:
    append(sequencer, 1_000)
    tail = tail_messages(log, TailHub(), EventFilter(), 0, None, None, page=100, is_active=lambda: True)
    first = next(tail)
    assert [e.sequence for e in first.events] == list(range(100))
    assert log.rows_read == 100  # not the 1,000 waiting behind it
    second = next(tail)
    assert second.events[0].sequence == 100
    assert log.rows_read == 200
    tail.close()


def test_an_announced_head_wakes_a_waiting_tail_at_once(log: CountingLog, sequencer: Sequencer) -> None:
    hub = TailHub()
    tail = tail_messages(log, hub, EventFilter(), None, None, None, is_active=lambda: True)
    got: list[int] = []
    reader = threading.Thread(target=lambda: got.extend(e.sequence for e in next(tail).events))
    reader.start()
    time.sleep(0.2)
    append(sequencer, 3)
    hub.on_head(2)
    reader.join(0.5)  # well before the one-second fallback
    assert got == [0, 1, 2]


def test_a_draining_hub_ends_the_tail_with_unavailable(log: CountingLog) -> None:
    hub = TailHub()
    tail = tail_messages(log, hub, EventFilter(), None, None, None, is_active=lambda: True)
    threading.Timer(0.2, hub.drain).start()
    with pytest.raises(ShuttingDownError, match="resume the tail from sequence 0"):
        next(tail)
