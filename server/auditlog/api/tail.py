"""TailEvents: replay from a sequence, then follow the log as it grows.

A tail reads pages by sequence from the database, in the search's row form, as its caller consumes
them, so a slow caller is paced by gRPC's flow control and holds at most one page in memory. Between
pages it sleeps until the process's one HeadListener hears a move announced (TailHub), or at most a
second, and then reads the committed head itself.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager

import grpc

from audit.v1 import audit_service_pb2 as pb
from auditlog.api.convert import MESSAGE_EVENTS, row_messages
from auditlog.domain.filters import EventFilter
from auditlog.errors import ShuttingDownError
from auditlog.storage.api import LogReader

_log = logging.getLogger(__name__)
# Events per database read: one stream message's worth, as SearchEvents sends them.
TAIL_PAGE = MESSAGE_EVENTS
# Longest sleep between looks at the caller and the head when nothing is announced.
IDLE_WAKE_SECONDS = 1.0


class TailHub:
    """The newest head this process heard of, shared by every tail of the process. Without a listener
    (or while it is disconnected) tails read the head once a second instead."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        # Announcements heard so far: only a wake-up, never trusted as a head (anyone who can
        # connect to the database may NOTIFY the channel, and a restored database can go back).
        self._moves = 0
        self._draining = False
        self._followers = 0
        self._closed = False

    @contextmanager
    def following(self) -> Iterator[None]:
        """Counts a live tail for as long as it runs (the listener listens only while one does)."""
        with self._cond:
            self._followers += 1
            self._cond.notify_all()
        try:
            yield
        finally:
            with self._cond:
                self._followers -= 1

    def wanted(self, timeout: float) -> bool:
        """Whether a tail of this process follows the log (never while draining or once closed),
        waiting up to timeout for one to start."""
        with self._cond:
            self._cond.wait_for(lambda: (self._followers > 0 and not self._draining) or self._closed, timeout)
            return self._followers > 0 and not self._draining and not self._closed

    def close(self) -> None:
        """Ends the listener's wait in wanted(): the process is stopping."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def on_head(self, sequence: int) -> None:
        """The head was announced to have moved (to sequence: a hint, not read)."""
        with self._cond:
            self._moves += 1
            self._cond.notify_all()

    @property
    def moves(self) -> int:
        return self._moves

    def drain(self) -> None:
        """Ends every tail with UNAVAILABLE (the server is stopping: clients resume elsewhere)."""
        with self._cond:
            self._draining = True
            self._cond.notify_all()

    @property
    def draining(self) -> bool:
        return self._draining

    def wait(self, moves: int, timeout: float = IDLE_WAKE_SECONDS) -> int:
        """Sleeps until an announcement beyond the moves-th, the hub drains, or timeout passes (at
        most a second: without a listener, or with one that went quiet, the tail still reads the
        head once a second). The count of announcements then."""
        with self._cond:
            self._cond.wait_for(lambda: self._draining or self._moves > moves, timeout)
            return self._moves


def tail_messages(
    store: LogReader,
    hub: TailHub,
    event_filter: EventFilter,
    from_sequence: int | None,
    to_sequence: int | None,
    context: grpc.ServicerContext,
    *,
    page: int = TAIL_PAGE,
    is_active: Callable[[], bool] | None = None,
) -> Generator[pb.TailEventsResponse, None, None]:
    """The tail's messages until the caller goes away; ShuttingDownError when the server drains."""
    with hub.following():
        yield from _follow(
            store, hub, event_filter, from_sequence, to_sequence, is_active or context.is_active, page
        )


def _follow(
    store: LogReader,
    hub: TailHub,
    event_filter: EventFilter,
    from_sequence: int | None,
    to_sequence: int | None,
    active: Callable[[], bool],
    page: int,
) -> Generator[pb.TailEventsResponse, None, None]:
    # Counted before the head is read: a move committed after the read wakes the wait below.
    moves = hub.moves
    head = store.head().sequence
    # after: every match up to it was sent; seen: the head read before the last read of the rows.
    after = head if from_sequence is None else from_sequence - 1
    seen = head
    caught_up = False
    while active():
        if to_sequence is not None and after >= to_sequence:
            return
        if hub.draining:
            raise ShuttingDownError(f"the server is shutting down; resume the tail from sequence {after + 1}")
        if caught_up:
            moves = hub.wait(moves)
            head = store.head().sequence
            if head <= seen:
                continue
            seen = head
        rows = store.search_page(event_filter, after, page)
        if to_sequence is not None and rows and rows[-1].sequence > to_sequence:
            rows = [r for r in rows if r.sequence <= to_sequence]
            seen = to_sequence
        for message in row_messages(rows, pb.TailEventsResponse):
            yield message
            after = message.events[-1].sequence
        caught_up = len(rows) < page
        if caught_up:
            # Every match up to seen was in this read (its snapshot came after seen was read).
            after = max(after, seen)
        elif after > seen:
            seen = after
