"""One LISTEN connection per server process: the head's moves, as PostgreSQL announces them at
commit (migration 0010_tail_notify), passed to one callback that fans them out to live tails."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import psycopg
from psycopg_pool import ConnectionPool

from auditlog.storage.postgres.database import connect_like

_log = logging.getLogger(__name__)
CHANNEL = "auditlog_head"
# How often the listener looks up from its connection to notice a stop request.
_WAKE_SECONDS = 1.0


class HeadListener:
    """Calls on_head(sequence) for each committed head move, and on_state(True/False) when listening
    starts or is lost (a lost connection is retried every second). On each start it also reports the
    current head, which covers the moves made while it was not listening."""

    def __init__(
        self, pool: ConnectionPool, on_head: Callable[[int], None], on_state: Callable[[bool], None]
    ) -> None:
        self._pool = pool
        self._on_head = on_head
        self._on_state = on_state
        self._stop = threading.Event()
        self._failing = False
        self._thread = threading.Thread(target=self._run, name="head-listener", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._listen()
            except (psycopg.Error, OSError) as err:
                if not self._failing:  # once per outage, not once a second
                    _log.warning(
                        "head listener lost its database connection (%s); retrying", type(err).__name__
                    )
                self._failing = True
            self._on_state(False)
            self._stop.wait(_WAKE_SECONDS)

    def _listen(self) -> None:
        with connect_like(self._pool, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"LISTEN {CHANNEL}")
            # Moves made before LISTEN took effect were not announced: the head now covers them.
            row = conn.execute("SELECT sequence FROM log_head WHERE id = 1").fetchone()
            if row is not None:
                self._on_head(row[0])
            self._on_state(True)
            self._failing = False
            while not self._stop.is_set():
                for notify in conn.notifies(timeout=_WAKE_SECONDS):
                    try:
                        self._on_head(int(notify.payload))
                    except ValueError:
                        continue  # not the trigger's: someone else's NOTIFY on this channel
                    if self._stop.is_set():
                        return
