"""One LISTEN connection per server process while it has live tails: the head's moves, as
PostgreSQL announces them at commit (migrations 0010_tail_notify and 0012_tail_notify_gate), passed
to one callback that fans them out to the tails."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from typing import Protocol

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


class Follow(Protocol):
    """What the listener serves (api.tail.TailHub)."""

    def on_head(self, sequence: int) -> None:
        """A committed head move."""

    def wanted(self, timeout: float) -> bool:
        """Whether a tail follows, waiting up to timeout for one to start."""
        ...

    def close(self) -> None:
        """From now on wanted() answers False at once."""


class HeadListener:
    """Calls hub.on_head(sequence) for each head move announced while hub.wanted() (a lost
    connection is retried every second). On each start it also reports the current head, which
    covers the moves made while it was not listening."""

    def __init__(self, pool: ConnectionPool, hub: Follow, *, linger: float = LINGER_SECONDS) -> None:
        self._pool = pool
        self._hub = hub
        self._linger = linger
        self._stop = threading.Event()
        self._failing = False
        self._connected = False
        self._thread = threading.Thread(target=self._run, name="head-listener", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._hub.close()
        if self._connected:
            # Wakes the listener from its wait for notifications (a payload it ignores), so that stopping
            # does not wait for its next look up.
            with contextlib.suppress(psycopg.Error), self._pool.connection(timeout=1) as conn:
                conn.execute("SELECT pg_notify(%s, 'stop')", (CHANNEL,))
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._hub.wanted(_WAKE_SECONDS):
                continue
            try:
                self._listen()
            except (psycopg.Error, OSError) as err:
                if not self._failing:  # once per outage, not once a second
                    _log.warning(
                        "head listener lost its database connection (%s); retrying", type(err).__name__
                    )
                self._failing = True
            if self._failing:
                self._stop.wait(_WAKE_SECONDS)

    @contextlib.contextmanager
    def _connection_open(self) -> Iterator[None]:
        self._connected = True
        try:
            yield
        finally:
            self._connected = False

    def _listen(self) -> None:
        with connect_like(self._pool, autocommit=True, connect_timeout=5) as conn, self._connection_open():
            # Lock before LISTEN: from here on every commit announces itself (closing releases it).
            conn.execute("SELECT pg_advisory_lock_shared(%s)", (LISTENING_LOCK,))
            conn.execute(f"LISTEN {CHANNEL}")
            # Moves made before LISTEN took effect were not announced: the head now covers them.
            row = conn.execute("SELECT sequence FROM log_head WHERE id = 1").fetchone()
            if row is not None:
                self._hub.on_head(row[0])
            self._failing = False
            unwanted_since: float | None = None
            while not self._stop.is_set():
                for notify in conn.notifies(timeout=_WAKE_SECONDS):
                    if self._stop.is_set():
                        return
                    try:
                        sequence = int(notify.payload)
                    except ValueError:
                        continue  # not the trigger's: stop()'s, or someone else's on this channel
                    self._hub.on_head(sequence)
                if self._hub.wanted(0):
                    unwanted_since = None
                elif unwanted_since is None:
                    unwanted_since = time.monotonic()
                elif time.monotonic() - unwanted_since >= self._linger:
                    return  # no tail for a while: closing the connection stops the NOTIFYs
