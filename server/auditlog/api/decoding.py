"""Requests that do not decode answer INVALID_ARGUMENT, for every method of every service.

grpcio runs the request deserializer in its own code and answers INTERNAL "Exception deserializing
request!" when it raises (invalid UTF-8 in a string field, truncated data, a bad varint, nesting past
protobuf's depth limit). `guarded(server, gate)` stands in for the server while services are added: each
method's deserializer is replaced by one that hands a marker to the method instead of raising, and
the method refuses the marker (InvalidArgumentError, a BadRequest naming the request). Each method
is also wrapped, once at registration, by the error model (auditlog.api.status: every error as the
status its class declares, request id, logging), which costs less per call than a
grpc.ServerInterceptor, whose pipeline runs on every call. The stand-in also puts every method
behind the server's `CallGate` (auditlog.api.drain): once it closes, new calls are held, then
answer UNAVAILABLE. A method given a CallPool runs on it, and answers RESOURCE_EXHAUSTED when the
pool refuses the call or its request's bytes do not fit in the pool's budget (checked before
parsing).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, cast

import grpc

from auditlog.api.drain import SHUTTING_DOWN, CallGate
from auditlog.api.limits import CallPool, refusing
from auditlog.api.status import mapped_handler, refuse_unavailable, streamed_answer, unary_answer
from auditlog.errors import AuditLogError, FieldViolation, InvalidArgumentError, ResourceExhaustedError

# What a deserializer that failed hands on; no real message is this object.
_UNDECODABLE: Any = object()


class _Refused:
    """What a deserializer hands on instead of parsing a request the server will refuse."""

    def __init__(self, error: AuditLogError) -> None:
        self.error = error


def _violation(deserialize: Callable[[bytes], Any], method: str) -> FieldViolation:
    # A generated deserializer is the message class's FromString, a bound classmethod.
    message_class = getattr(deserialize, "__self__", None)
    full_name = getattr(getattr(message_class, "DESCRIPTOR", None), "full_name", "")
    return FieldViolation(
        "request",
        f"got bytes that are not a valid {full_name or 'request of ' + method} (truncated or malformed "
        "data, invalid UTF-8 text, or nesting too deep), want a well-formed message",
    )


def guard_handler(
    handler: grpc.RpcMethodHandler, method: str, gate: CallGate, pool: CallPool | None = None
) -> grpc.RpcMethodHandler:
    """handler with its request deserializer made safe, its errors mapped, its calls behind gate, run
    on pool if any (see module docstring)."""
    deserialize = handler.request_deserializer
    if deserialize is None:
        return mapped_handler(handler, method)
    violations = [_violation(deserialize, method)]
    name = method.rsplit("/", 1)[-1]

    def safe_deserialize(data: bytes) -> Any:
        if pool is not None and pool.budget is not None:
            try:
                pool.budget.check(len(data))
            except ResourceExhaustedError as err:
                return _Refused(err)
        try:
            return deserialize(data)
        except Exception:  # noqa: BLE001 - whatever the bytes make a message class raise, they are the client's
            return _UNDECODABLE

    def gated(unmapped: Callable[[Any, grpc.ServicerContext], Any]) -> Callable[..., Any]:
        answer = streamed_answer if handler.response_streaming else unary_answer
        behaviour = answer(unmapped, name, method)
        if handler.response_streaming:
            # Streams are not counted as running: they may stay open long; the server's grace bounds them.
            def opened(request: Any, context: grpc.ServicerContext) -> Any:
                if not gate.admit(count=False):
                    refuse_unavailable(context, name, SHUTTING_DOWN)
                return behaviour(request, context)

            return opened

        def admitted(request: Any, context: grpc.ServicerContext) -> Any:
            if not gate.admit():
                refuse_unavailable(context, name, SHUTTING_DOWN)
            try:
                return behaviour(request, context)
            finally:
                gate.finished()

        return admitted

    serialize = handler.response_serializer
    if not handler.request_streaming:
        behaviour = handler.unary_stream if handler.response_streaming else handler.unary_unary

        @gated
        def checked(request: Any, context: grpc.ServicerContext) -> Any:
            if pool is not None and refusing():
                raise ResourceExhaustedError(pool.message)
            if isinstance(request, _Refused):
                raise request.error
            if request is _UNDECODABLE:
                raise InvalidArgumentError(violations)
            return behaviour(request, context)

        if pool is not None:
            checked.experimental_thread_pool = pool  # type: ignore[attr-defined]
        make = (
            grpc.unary_stream_rpc_method_handler
            if handler.response_streaming
            else grpc.unary_unary_rpc_method_handler
        )
        return make(checked, request_deserializer=safe_deserialize, response_serializer=serialize)

    if pool is not None:
        raise ValueError(f"{method}: a CallPool bounds unary requests only")
    streamed = handler.stream_stream if handler.response_streaming else handler.stream_unary

    def checked_requests(requests: Iterable[Any], context: grpc.ServicerContext) -> Iterator[Any]:
        for request in requests:
            if request is _UNDECODABLE:
                raise InvalidArgumentError(violations)
            yield request

    @gated
    def checked_stream(requests: Iterable[Any], context: grpc.ServicerContext) -> Any:
        return streamed(checked_requests(requests, context), context)

    make = (
        grpc.stream_stream_rpc_method_handler
        if handler.response_streaming
        else grpc.stream_unary_rpc_method_handler
    )
    return make(checked_stream, request_deserializer=safe_deserialize, response_serializer=serialize)


class _GuardedGenericHandler(grpc.GenericRpcHandler):  # type: ignore[misc]
    def __init__(self, inner: grpc.GenericRpcHandler, gate: CallGate, pools: Mapping[str, CallPool]) -> None:
        self._inner = inner
        self._gate = gate
        self._pools = pools
        self._guarded: dict[str, grpc.RpcMethodHandler] = {}

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        handler = self._inner.service(handler_call_details)
        if handler is None:
            return None
        method: str = handler_call_details.method
        guarded = self._guarded.get(method)
        if guarded is None:
            # Only methods the service has get here, so the cache stays as small as the services.
            guarded = self._guarded[method] = guard_handler(
                handler, method, self._gate, self._pools.get(method)
            )
        return guarded


class _GuardedRegistrar:
    """The part of grpc.Server that generated add_*_to_server functions and reflection call."""

    def __init__(self, server: grpc.Server, gate: CallGate, pools: Mapping[str, CallPool]) -> None:
        self._server = server
        self._gate = gate
        self._pools = pools

    def add_generic_rpc_handlers(self, handlers: Iterable[grpc.GenericRpcHandler]) -> None:
        self._server.add_generic_rpc_handlers(
            tuple(_GuardedGenericHandler(h, self._gate, self._pools) for h in handlers)
        )

    def add_registered_method_handlers(
        self, service_name: str, method_handlers: dict[str, grpc.RpcMethodHandler]
    ) -> None:
        self._server.add_registered_method_handlers(
            service_name,
            {
                method: guard_handler(
                    handler,
                    f"/{service_name}/{method}",
                    self._gate,
                    self._pools.get(f"/{service_name}/{method}"),
                )
                for method, handler in method_handlers.items()
            },
        )


def guarded(server: grpc.Server, gate: CallGate, pools: Mapping[str, CallPool] | None = None) -> grpc.Server:
    """A stand-in for server to add services to (see module docstring); pools: by full method name,
    e.g. /audit.v1.AuditService/AppendEvents."""
    return cast(grpc.Server, _GuardedRegistrar(server, gate, pools or {}))
