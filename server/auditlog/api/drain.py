"""The drain before a stop, so a call the server does not complete answers UNAVAILABLE.

grpcio's stop (`server.stop`) shuts the gRPC core down, which answers CANCELLED, a code retry
policies do not retry, to every call that reached the process but was not yet handed to a method
(the server takes calls off the wire one at a time; under load dozens wait), and to calls that
arrive before the client has read the GOAWAY. Refusing new calls at once does not help: each
client sends its next call at once, and that one waits in the core. So `Service.stop` closes the
gate first: every new call, of any method, is held before any work, which keeps its client (and
Envoy's stream) waiting instead of sending more; once admitted unary calls have finished and no
call has arrived for a short quiet time, the server stops (clients get GOAWAY), and only then are
the held calls answered UNAVAILABLE.
"""

from __future__ import annotations

import threading
import time

SHUTTING_DOWN = "the server is shutting down; retry"


class CallGate:
    """Admits calls until closed; counts the admitted unary calls still running; holds the calls
    that arrive after it closed until `release()`."""

    def __init__(self) -> None:
        self._closed = False
        self._running = 0
        self._last_arrival = 0.0
        self._changed = threading.Condition()
        self._released = threading.Event()

    def admit(self, count: bool = True) -> bool:
        """True: the call may run (counted as running until `finished()` when count). False once
        closed, after waiting for `release()`: the call must be refused."""
        with self._changed:
            if not self._closed:
                self._running += count
                return True
            self._last_arrival = time.monotonic()
            self._changed.notify_all()
        self._released.wait()
        return False

    def finished(self) -> None:
        with self._changed:
            self._running -= 1
            self._changed.notify_all()

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._last_arrival = time.monotonic()

    def wait_quiet(self, quiet: float, timeout: float) -> bool:
        """After close(): blocks until no admitted call runs and none has arrived for quiet seconds
        (True), or timeout seconds passed (False)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                now = time.monotonic()
                quiet_at = self._last_arrival + quiet
                if self._running == 0 and now >= quiet_at:
                    return True
                if now >= deadline:
                    return False
                wake = deadline if self._running else min(deadline, quiet_at)
                self._changed.wait(wake - now)

    def release(self) -> None:
        """The held calls go on, to be refused; so do calls arriving from now on."""
        self._released.set()
