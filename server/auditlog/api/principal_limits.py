"""Bounds per principal (with auth on): open server streams and calls a second, checked before a
method does any work, so one noisy caller reaches its own bound long before the process-wide ones
of api.limits that every caller shares. Export jobs in flight are bounded where jobs are created
(ExportJobQueue.create). Calls without a principal (auth off) pass."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from auditlog.api.principal import current_principal
from auditlog.api.status import refuse
from auditlog.errors import ResourceExhaustedError

# Health answers whoever asks; it is never the noisy part.
_EXEMPT_PREFIXES = ("/grpc.health.v1.", "/audit.v1.HealthService/", "/grpc.reflection.")
# Buckets idle this long are full again and dropped, so the table holds only recent callers.
_FORGET_SECONDS = 60.0


class PrincipalLimits:
    """Each principal: at most max_streams open streams, and rate calls a second with bursts of as
    many (a token bucket per principal name)."""

    def __init__(self, max_streams: int, rate: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_streams = max_streams
        self.rate = rate
        self._clock = clock
        self._lock = threading.Lock()
        self._streams: dict[str, int] = {}
        self._buckets: dict[str, tuple[float, float]] = {}  # name -> (tokens, as of)
        self._swept = clock()

    def admit(self, name: str) -> None:
        """Takes one call from name's bucket; ResourceExhaustedError when it is empty."""
        now = self._clock()
        with self._lock:
            if now - self._swept > _FORGET_SECONDS:
                self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < _FORGET_SECONDS}
                self._swept = now
            tokens, since = self._buckets.get(name, (float(self.rate), now))
            tokens = min(float(self.rate), tokens + (now - since) * self.rate)
            if tokens < 1.0:
                self._buckets[name] = (tokens, now)
                raise ResourceExhaustedError(
                    f"too many calls from {name}: got more than {self.rate} a second, want at most"
                    f" {self.rate}; retry later"
                )
            self._buckets[name] = (tokens - 1.0, now)

    def open_stream(self, name: str) -> None:
        with self._lock:
            held = self._streams.get(name, 0)
            if held >= self.max_streams:
                raise ResourceExhaustedError(
                    f"too many open streams for {name}: got {held} open, want at most"
                    f" {self.max_streams} per caller; retry later"
                )
            self._streams[name] = held + 1

    def close_stream(self, name: str) -> None:
        with self._lock:
            left = self._streams[name] - 1
            if left:
                self._streams[name] = left
            else:
                del self._streams[name]


class PrincipalLimitInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """Applies PrincipalLimits to every call but health's, on the thread that runs the method (the
    principal is bound there, by the authentication interceptor, which must come before this one)."""

    def __init__(self, limits: PrincipalLimits) -> None:
        self._limits = limits
        # Per method: the handler the server gave and its limited form, made once, not per call.
        self._limited: dict[str, tuple[Any, Any]] = {}

    def intercept_service(self, continuation: Callable[..., Any], details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        if handler is None or details.method.startswith(_EXEMPT_PREFIXES):
            return handler
        known = self._limited.get(details.method)
        if known is not None and known[0] is handler:
            return known[1]
        limited = self._limit(handler, details.method.rsplit("/", 1)[-1])
        self._limited[details.method] = (handler, limited)
        return limited

    def _limit(self, handler: Any, name: str) -> Any:
        limits = self._limits
        if handler.unary_unary is not None:
            unary = handler.unary_unary

            @functools.wraps(unary)  # keeps experimental_thread_pool (api.limits.CallPool)
            def limited_unary(request: Any, context: grpc.ServicerContext) -> Any:
                principal = current_principal()
                if principal is not None:
                    try:
                        limits.admit(principal.name)
                    except ResourceExhaustedError as err:
                        refuse(context, name, err)
                return unary(request, context)

            return handler._replace(unary_unary=limited_unary)
        if handler.unary_stream is not None:
            stream = handler.unary_stream

            @functools.wraps(stream)
            def limited_stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                principal = current_principal()
                if principal is None:
                    yield from stream(request, context)
                    return
                try:
                    limits.admit(principal.name)
                    limits.open_stream(principal.name)
                except ResourceExhaustedError as err:
                    refuse(context, name, err)
                try:
                    yield from stream(request, context)
                finally:
                    limits.close_stream(principal.name)

            return handler._replace(unary_stream=limited_stream)
        return handler
