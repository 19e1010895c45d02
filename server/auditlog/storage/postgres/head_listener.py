"""One LISTEN connection per server process while it has live tails: the head's moves, as
PostgreSQL announces them at commit (migrations 0010_tail_notify and 0012_tail_notify_gate), passed
to one callback that fans them out to the tails."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import psycopg
from psycopg_pool import ConnectionPool

from auditlog.storage.postgres.database import connect_like

_log = logging.getLogger(__name__)
CHANNEL = "auditlog_head"
# How often the listener looks up from its connection to notice a stop request.
_WAKE_SECONDS = 1.0
# Held shared by a listening connection: commits send NOTIFY only while someone holds it (0012).
LISTENING_LOCK = 0x7461696C  # "tail"
# How long the connection stays after the last tail ends, so that a reconnecting tail finds it.
LINGER_SECONDS = 30.0


class HeadListener:
    """Calls on_head(sequence) for each committed head move, and on_state(True/False) when listening
    starts or is lost (a lost connection is retried every second). On each start it also reports the
    current head, which covers the moves made while it was not listening."""

    def __init__(
        self,
        pool: ConnectionPool,
        on_head: Callable[[int], None],
        on_state: Callable[[bool], None],
        wanted: Callable[[float], bool],
        *,
        linger: float = LINGER_SECONDS,
    ) -> None:
        self._pool = pool
        self._on_head = on_head
        self._on_state = on_state
        # wanted(timeout): whether a tail follows, waiting up to timeout for one to start.
        self._wanted = wanted
        self._linger = linger
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
            if not self._wanted(_WAKE_SECONDS):
                continue
            try:
                self._listen()
            except (psycopg.Error, OSError) as err:
                if not self._failing:  # once per outage, not once a second
                    _log.warning(
                        "head listener lost its database connection (%s); retrying", type(err).__name__
                    )
                self._failing = True
            self._on_state(False)
            if self._failing:
                self._stop.wait(_WAKE_SECONDS)

    def _listen(self) -> None:
        with connect_like(self._pool, autocommit=True, connect_timeout=5) as conn:
            # Lock before LISTEN: from here on every commit announces itself (closing releases it).
            conn.execute("SELECT pg_advisory_lock_shared(%s)", (LISTENING_LOCK,))
            conn.execute(f"LISTEN {CHANNEL}")
            # Moves made before LISTEN took effect were not announced: the head now covers them.
            row = conn.execute("SELECT sequence FROM log_head WHERE id = 1").fetchone()
            if row is not None:
                self._on_head(row[0])
            self._on_state(True)
            self._failing = False
            unwanted_since: float | None = None
            while not self._stop.is_set():
                for notify in conn.notifies(timeout=_WAKE_SECONDS):
                    try:
                        self._on_head(int(notify.payload))
                    except ValueError:
                        continue  # not the trigger's: someone else's NOTIFY on this channel
                    if self._stop.is_set():
                        return
                if self._wanted(0):
                    unwanted_since = None
                elif unwanted_since is None:
                    unwanted_since = time.monotonic()
                elif time.monotonic() - unwanted_since >= self._linger:
                    return  # no tail for a while: closing the connection stops the NOTIFYs
