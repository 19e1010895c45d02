"""Bounds on what callers hold: concurrent server streams, their idle time, AppendEvents calls and
bytes in flight. Beyond a bound a caller gets RESOURCE_EXHAUSTED at once, so appends, unary reads and
health keep their threads, connections and memory whatever streaming or bulk callers do."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import closing, contextmanager
from typing import Any, TypeVar

import grpc

from auditlog.errors import ResourceExhaustedError

_log = logging.getLogger(__name__)
T = TypeVar("T")


class _Slot:
    """One open stream: waiting_since is set while a message it yielded waits for the caller to take it."""

    def __init__(self, context: grpc.ServicerContext, name: str) -> None:
        self.context = context
        self.name = name
        self.waiting_since: float | None = None
        self.expired = False


class StreamLimiter:
    """At most max_streams server streams at once; a stream whose caller has not taken a message for
    idle_seconds is cancelled (its thread and database connection return at once)."""

    def __init__(self, max_streams: int, idle_seconds: float) -> None:
        self.max_streams = max_streams
        self.idle_seconds = idle_seconds
        self._slots: set[_Slot] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="stream-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    @property
    def open_streams(self) -> int:
        with self._lock:
            return len(self._slots)

    def guard(self, context: grpc.ServicerContext, name: str, messages: Iterator[T]) -> Iterator[T]:
        """messages, within the bounds; raises ResourceExhaustedError before reading any of them when
        max_streams streams are open. Lazy: call it inside the servicer's generator."""
        slot = _Slot(context, name)
        with self._lock:
            if len(self._slots) >= self.max_streams:
                raise ResourceExhaustedError(
                    f"too many open streams: got {self.max_streams} open, want fewer; retry later"
                )
            self._slots.add(slot)
        try:
            with closing(messages):  # type: ignore[type-var]
                for message in messages:
                    slot.waiting_since = time.monotonic()
                    yield message
                    slot.waiting_since = None
        finally:
            with self._lock:
                self._slots.discard(slot)

    def _watch(self) -> None:
        interval = min(1.0, self.idle_seconds / 4)
        while not self._stop.wait(interval):
            now = time.monotonic()
            with self._lock:
                idle = [
                    s
                    for s in self._slots
                    if not s.expired
                    and s.waiting_since is not None
                    and now - s.waiting_since > self.idle_seconds
                ]
                for slot in idle:
                    slot.expired = True
            for slot in idle:
                _log.info("rpc=%s ended: the caller took no message for %.0f s", slot.name, self.idle_seconds)
                # The thread waiting to send wakes up and drops the stream, closing its cursor.
                slot.context.cancel()


class ByteBudget:
    """A number of bytes that requests in flight share; a request that does not fit is refused."""

    def __init__(self, limit: int, what: str) -> None:
        self.limit = limit
        self._what = what
        self._used = 0
        self._lock = threading.Lock()

    def check(self, size: int) -> None:
        """Raises ResourceExhaustedError when size would not fit now (nothing is held)."""
        with self._lock:
            self._check(size)

    def _check(self, size: int) -> None:
        if self._used and self._used + size > self.limit:
            raise ResourceExhaustedError(
                f"too many {self._what} bytes in flight: got {size} more with {self._used} in flight,"
                f" want at most {self.limit} in all; retry later"
            )

    @contextmanager
    def hold(self, size: int) -> Iterator[None]:
        with self._lock:
            self._check(size)
            self._used += size
        try:
            yield
        finally:
            with self._lock:
                self._used -= size


_refusal_thread = threading.local()


def _mark_refusal_thread() -> None:
    _refusal_thread.refusing = True


def refusing() -> bool:
    """Whether this thread only refuses calls (see CallPool)."""
    return getattr(_refusal_thread, "refusing", False)


class CallPool(futures.ThreadPoolExecutor):
    """The threads of one unary method (grpcio's experimental_thread_pool). grpcio starts receiving a
    request only in the thread that runs the call, so at most `threads` requests are received and
    parsed at once; `waiting` more calls may queue, not yet received. Calls beyond that run on one
    refusal thread, where `refusing()` is true: the method answers RESOURCE_EXHAUSTED at once."""

    def __init__(self, threads: int, waiting: int, name: str, budget: ByteBudget | None = None) -> None:
        super().__init__(max_workers=threads, thread_name_prefix=name)
        self.threads = threads
        self.waiting = waiting
        # The bytes the method holds while it runs: a request that cannot fit is not parsed.
        self.budget = budget
        self.message = (
            f"too many {name} calls: got {threads} running and {waiting} waiting, want fewer; retry later"
        )
        # One thread: a refused request is still received, so one at a time bounds their memory.
        self._refusals = futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"{name}-refusal", initializer=_mark_refusal_thread
        )
        self._admitted = 0
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> futures.Future[T]:
        with self._lock:
            admitted = self._admitted < self.threads + self.waiting
            self._admitted += admitted
        if not admitted:
            return self._refusals.submit(fn, *args, **kwargs)
        try:
            future = super().submit(fn, *args, **kwargs)
        except BaseException:
            self._release()
            raise
        future.add_done_callback(lambda _: self._release())
        return future

    def _release(self) -> None:
        with self._lock:
            self._admitted -= 1

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        super().shutdown(wait, cancel_futures=cancel_futures)
        self._refusals.shutdown(wait, cancel_futures=cancel_futures)
