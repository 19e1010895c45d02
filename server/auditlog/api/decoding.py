"""Requests that do not decode answer INVALID_ARGUMENT, for every method of every service.

grpcio runs the request deserializer in its own code and answers INTERNAL "Exception deserializing
request!" when it raises (invalid UTF-8 in a string field, truncated data, a bad varint, nesting past
protobuf's depth limit). `guarded(server)` stands in for the server while services are added: each
method's deserializer is replaced by one that hands a marker to the method instead of raising, and
the method refuses the marker (InvalidArgumentError, a BadRequest naming the request).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, cast

import grpc

from auditlog.errors import FieldViolation, InvalidArgumentError

# What a deserializer that failed hands on; no real message is this object.
_UNDECODABLE: Any = object()


def _violation(deserialize: Callable[[bytes], Any], method: str) -> FieldViolation:
    # A generated deserializer is the message class's FromString, a bound classmethod.
    message_class = getattr(deserialize, "__self__", None)
    full_name = getattr(getattr(message_class, "DESCRIPTOR", None), "full_name", "")
    return FieldViolation(
        "request",
        f"got bytes that are not a valid {full_name or 'request of ' + method} (truncated or malformed "
        "data, invalid UTF-8 text, or nesting too deep), want a well-formed message",
    )


def guard_handler(handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
    """handler with its request deserializer made safe (see module docstring)."""
    deserialize = handler.request_deserializer
    if deserialize is None:
        return handler
    violations = [_violation(deserialize, method)]

    def safe_deserialize(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception:  # noqa: BLE001 - whatever the bytes make a message class raise, they are the client's
            return _UNDECODABLE

    serialize = handler.response_serializer
    if not handler.request_streaming:
        behaviour = handler.unary_stream if handler.response_streaming else handler.unary_unary

        def checked(request: Any, context: grpc.ServicerContext) -> Any:
            if request is _UNDECODABLE:
                raise InvalidArgumentError(violations)
            return behaviour(request, context)

        make = (
            grpc.unary_stream_rpc_method_handler
            if handler.response_streaming
            else grpc.unary_unary_rpc_method_handler
        )
        return make(checked, request_deserializer=safe_deserialize, response_serializer=serialize)

    streamed = handler.stream_stream if handler.response_streaming else handler.stream_unary

    def checked_requests(requests: Iterable[Any], context: grpc.ServicerContext) -> Iterator[Any]:
        for request in requests:
            if request is _UNDECODABLE:
                raise InvalidArgumentError(violations)
            yield request

    def checked_stream(requests: Iterable[Any], context: grpc.ServicerContext) -> Any:
        return streamed(checked_requests(requests, context), context)

    make = (
        grpc.stream_stream_rpc_method_handler
        if handler.response_streaming
        else grpc.stream_unary_rpc_method_handler
    )
    return make(checked_stream, request_deserializer=safe_deserialize, response_serializer=serialize)


class _GuardedGenericHandler(grpc.GenericRpcHandler):  # type: ignore[misc]
    def __init__(self, inner: grpc.GenericRpcHandler) -> None:
        self._inner = inner
        self._guarded: dict[str, grpc.RpcMethodHandler] = {}

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        handler = self._inner.service(handler_call_details)
        if handler is None:
            return None
        method: str = handler_call_details.method
        guarded = self._guarded.get(method)
        if guarded is None:
            # Only methods the service has get here, so the cache stays as small as the services.
            guarded = self._guarded[method] = guard_handler(handler, method)
        return guarded


class _GuardedRegistrar:
    """The part of grpc.Server that generated add_*_to_server functions and reflection call."""

    def __init__(self, server: grpc.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, handlers: Iterable[grpc.GenericRpcHandler]) -> None:
        self._server.add_generic_rpc_handlers(tuple(_GuardedGenericHandler(h) for h in handlers))

    def add_registered_method_handlers(
        self, service_name: str, method_handlers: dict[str, grpc.RpcMethodHandler]
    ) -> None:
        self._server.add_registered_method_handlers(
            service_name,
            {
                method: guard_handler(handler, f"/{service_name}/{method}")
                for method, handler in method_handlers.items()
            },
        )


def guarded(server: grpc.Server) -> grpc.Server:
    """A stand-in for server to add services to (see module docstring)."""
    return cast(grpc.Server, _GuardedRegistrar(server))
