"""BatchWriter: create() calls grouped into AppendEvents by a background thread."""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import Any

from audit.v1 import event_pb2
from auditlog_client.errors import AuditLogClientError, Unavailable

# AppendEvents takes at most this many events per request.
MAX_BATCH = 1_000
_CLOSE = object()


class BatchWriter:
    """Queues events and sends them max_events to an AppendEvents call, or whatever has waited
    interval seconds, and everything on flush() and close(). Each event gets a request_id (its own
    or a new UUID), so a batch retried after UNAVAILABLE (for up to retry_for seconds, backing off)
    is recorded once. create() returns a Future of the recorded event; a batch refused for another
    reason fails every event of it (AppendEvents is all or nothing). At most max_pending events wait:
    create() then blocks, so a writer faster than the server is slowed, not buffered without bound."""

    def __init__(
        self,
        append: Callable[[list[event_pb2.EventInput]], list[event_pb2.AuditEvent]],
        *,
        max_events: int = 500,
        interval: float = 0.2,
        retry_for: float = 30.0,
        max_pending: int = 10_000,
    ) -> None:
        if not 1 <= max_events <= MAX_BATCH:
            raise ValueError(f"max_events: got {max_events}, want 1 to {MAX_BATCH}")
        self._append = append
        self.max_events = max_events
        self.interval = interval
        self.retry_for = retry_for
        self._queue: queue.Queue[Any] = queue.Queue(max_pending)
        self._idle = threading.Condition()
        self._unsent = 0
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="auditlog-batch-writer", daemon=True)
        self._thread.start()

    def __enter__(self) -> BatchWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def create(
        self, *, event_type: str, action: str, details: Mapping[str, Any] | None = None, **fields: str
    ) -> Future[event_pb2.AuditEvent]:
        from auditlog_client.client import event_input

        if self._closed:
            raise RuntimeError("the batch writer is closed")
        fields.setdefault("request_id", "")
        if not fields["request_id"]:
            fields["request_id"] = str(uuid.uuid4())
        future: Future[event_pb2.AuditEvent] = Future()
        with self._idle:
            self._unsent += 1
        self._queue.put(
            (event_input(event_type=event_type, action=action, details=details, **fields), future)
        )
        return future

    def flush(self, timeout: float | None = None) -> bool:
        """Waits until every event created so far is sent (or failed); False on timeout."""
        self._queue.put(None)  # wakes the sender to send what it holds now
        with self._idle:
            return self._idle.wait_for(lambda: self._unsent == 0, timeout)

    def close(self, timeout: float | None = None) -> None:
        """Sends what is queued, then stops the thread."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_CLOSE)
        self._thread.join(timeout)

    def _run(self) -> None:
        pending: list[tuple[event_pb2.EventInput, Future[event_pb2.AuditEvent]]] = []
        deadline: float | None = None
        while True:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                item = self._queue.get(timeout=wait)
            except queue.Empty:
                item = None
            if item is not None and item is not _CLOSE:
                pending.append(item)
                if deadline is None:
                    deadline = time.monotonic() + self.interval
                if len(pending) < self.max_events:
                    continue
            # A flush, the interval passed, a full batch, or closing: send what is held.
            while pending:
                batch, pending = pending[: self.max_events], pending[self.max_events :]
                self._send(batch)
            deadline = None
            if item is _CLOSE:
                return

    def _send(self, batch: list[tuple[event_pb2.EventInput, Future[event_pb2.AuditEvent]]]) -> None:
        events = [event for event, _ in batch]
        give_up = time.monotonic() + self.retry_for
        delay = 0.1
        try:
            while True:
                try:
                    recorded = self._append(events)
                    break
                except Unavailable:
                    if time.monotonic() + delay > give_up:
                        raise
                    time.sleep(delay)
                    delay = min(2.0, delay * 2)
            for (_, future), event in zip(batch, recorded, strict=True):
                future.set_result(event)
        except (AuditLogClientError, ValueError) as err:  # ValueError: the channel was closed
            for _, future in batch:
                future.set_exception(err)
        finally:
            with self._idle:
                self._unsent -= len(batch)
                self._idle.notify_all()
