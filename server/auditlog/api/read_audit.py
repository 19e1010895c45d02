"""Audited reads: with a principal bound (auth on), every read RPC appends an `audit.log.read` event
(user_id: the principal, action: the RPC, details: what was asked and how many rows were read).

The reader's thread only queues a small tuple; a background thread turns what queued into events
every flush interval and hands each principal's group to the sequencer (recorded_by is one per
append), so a read pays no validation, hashing or commit of its own. On shutdown, stop() flushes
whatever is queued and waits for it to commit, before the sequencer stops."""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from concurrent.futures import Future
from typing import Any

from auditlog.api.principal import current_principal
from auditlog.domain.event import EventRecord, NewEvent
from auditlog.domain.filters import EventFilter
from auditlog.domain.validation import validate_new_event
from auditlog.errors import AuditLogError
from auditlog.export.jobs import filter_to_json
from auditlog.sequencer import Sequencer

_log = logging.getLogger(__name__)
EVENT_TYPE = "audit.log.read"
# Events per append: well inside one sequencer batch.
_CHUNK = 500


class ReadAuditor:
    """Queues read events and appends them in batches every flush_seconds (see module docstring)."""

    def __init__(self, sequencer: Sequencer | None, *, enabled: bool, flush_seconds: float = 0.2) -> None:
        self.enabled = enabled and sequencer is not None
        self._sequencer = sequencer
        self._flush_seconds = flush_seconds
        self._pending: list[tuple[str, str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="read-audit", daemon=True)

    def start(self) -> None:
        if self.enabled:
            self._thread.start()

    def record(
        self, rpc: str, rows: int, event_filter: EventFilter | None = None, **asked: str | int
    ) -> None:
        """Queues one read by the current principal (nothing with auth off or audited reads off):
        rpc read rows rows; the filters and any other arguments asked go into details."""
        if not self.enabled:
            return
        principal = current_principal()
        if principal is None:
            return
        details: dict[str, Any] = {"rows": rows}
        if event_filter is not None:
            details["filters"] = filter_to_json(event_filter)
        details.update(asked)
        with self._lock:
            self._pending.append((principal.name, rpc, details))

    def flush(self) -> list[Future[list[EventRecord]]]:
        """Hands everything queued to the sequencer now; the futures of the appends."""
        with self._lock:
            pending, self._pending = self._pending, []
        by_principal: dict[str, list[NewEvent]] = defaultdict(list)
        for name, rpc, details in pending:
            try:
                by_principal[name].append(_event(name, rpc, details))
            except AuditLogError as err:  # e.g. a principal name no user_id can hold
                _log.error("an audited read of %s not recorded: %s", rpc, err)
        futures: list[Future[list[EventRecord]]] = []
        sequencer = self._sequencer
        if sequencer is None:  # never enabled without one
            return futures
        for name, events in by_principal.items():
            for start in range(0, len(events), _CHUNK):
                try:
                    futures.append(sequencer.submit(events[start : start + _CHUNK], recorded_by=name))
                except AuditLogError as err:
                    _log.error("%d audited reads not recorded: %s", len(events[start : start + _CHUNK]), err)
        return futures

    def _run(self) -> None:
        while not self._stop.wait(self._flush_seconds):
            self._settle(self.flush())

    @staticmethod
    def _settle(futures: list[Future[list[EventRecord]]], timeout: float | None = None) -> None:
        for future in futures:
            try:
                future.result(timeout)
            except Exception as err:  # noqa: BLE001 - logged; the reads were answered already
                _log.error("audited reads not recorded: %s", err)

    def stop(self, timeout: float = 30.0) -> None:
        """Stops the thread, then appends whatever is still queued and waits for it (the drain
        path: the server takes no more calls, the sequencer still runs)."""
        if not self.enabled:
            return
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._settle(self.flush(), timeout)


def _event(name: str, rpc: str, details: dict[str, Any]) -> NewEvent:
    # Validated as any client's event: the same limits, and its details carried as canonical text.
    return validate_new_event(
        {"event_type": EVENT_TYPE, "action": rpc, "user_id": name[:256], "resource_type": "audit_log"},
        _json_numbers(details),
    )


def _json_numbers(value: Any) -> Any:
    """value with integers as floats, as details arriving as JSON hold them."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return float(value)
    if isinstance(value, dict):
        return {k: _json_numbers(v) for k, v in value.items()}
    return value
