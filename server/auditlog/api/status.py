"""The one place where errors become gRPC statuses: `mapped_handler` (unary_answer, streamed_answer),
applied to every method of every service once, when api.decoding's registrar adds it.

It turns an exception into the status its class declares, tags the failed call with a request id
(the caller's `x-request-id` metadata, or a new one) sent back as `x-request-id` trailing metadata,
and logs one line per failed call (every call at debug level); classes declare their status in
auditlog.errors. Errors of our own carry a message safe for clients;
INTERNAL (and anything not ours) carries only the request id, so no stack trace, SQL or path ever
reaches a caller. While a call runs, `current_request_id` gives its id to log lines (auditlog.logs),
and metrics count it when it ends (auditlog.metrics).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any, NoReturn

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from auditlog import metrics
from auditlog.errors import AuditLogError, InvalidArgumentError

_log = logging.getLogger("auditlog.rpc")
REQUEST_ID = "x-request-id"


def status_for(err: BaseException, request_id: str) -> status_pb2.Status:
    """The google.rpc.Status a client sees for err."""
    code = err.code if isinstance(err, AuditLogError) else code_pb2.INTERNAL
    if code == code_pb2.INTERNAL:
        return status_pb2.Status(code=code, message=f"internal error (request id {request_id})")
    status = status_pb2.Status(code=code, message=str(err))
    if isinstance(err, InvalidArgumentError):
        detail = any_pb2.Any()
        detail.Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                    for v in err.violations
                ]
            )
        )
        status.details.append(detail)
    return status


class _Call:
    """The call a thread serves now, and its request id once something asked for it."""

    __slots__ = ("context", "request_id")

    def __init__(self, context: grpc.ServicerContext) -> None:
        self.context = context
        self.request_id: str | None = None


_current: ContextVar[_Call | None] = ContextVar("auditlog_call", default=None)


def current_request_id() -> str | None:
    """The request id of the call this thread serves (made once per call, when first asked for:
    log lines and the answer then agree), or None outside a call."""
    call = _current.get()
    if call is None:
        return None
    if call.request_id is None:
        call.request_id = request_id_of(call.context)
    return call.request_id


def _answered_id(context: grpc.ServicerContext) -> str:
    """The call's request id, also sent back in the trailing metadata: made only when a call fails,
    since a successful call has no use for it and every call would pay for it."""
    call = _current.get()
    request_id = current_request_id() if call is not None and call.context is context else None
    if request_id is None:
        request_id = request_id_of(context)
    context.set_trailing_metadata(((REQUEST_ID, request_id),))
    return request_id


def request_id_of(context: grpc.ServicerContext) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID and isinstance(value, str) and 0 < len(value) <= 128:
            return value
    return uuid.uuid4().hex


def _fail(context: grpc.ServicerContext, name: str, err: Exception, request_id: str, started: float) -> None:
    """Ends the call with err's status; raises."""
    if _has_status(context):
        raise err  # context.abort ended the call already: its status stands
    status = status_for(err, request_id)
    elapsed_ms = (time.monotonic() - started) * 1000
    if status.code == code_pb2.INTERNAL:
        _log.error("rpc=%s request_id=%s code=INTERNAL ms=%.1f", name, request_id, elapsed_ms, exc_info=err)
    else:
        _log.info(
            "rpc=%s request_id=%s code=%s ms=%.1f error=%r",
            name,
            request_id,
            code_pb2.Code.Name(status.code),
            elapsed_ms,
            status.message,
        )
    rich = rpc_status.to_status(status)
    # What abort_with_status does, spelled out: grpc_testing's context lacks abort_with_status.
    context.set_trailing_metadata((*rich.trailing_metadata, (REQUEST_ID, request_id)))
    context.abort(rich.code, rich.details)


def refuse(context: grpc.ServicerContext, name: str, err: Exception) -> NoReturn:
    """Ends the call with err's status before the method runs (for interceptors, which run outside
    the error model's per-method wrapping); raises."""
    _fail(context, name, err, _answered_id(context), time.monotonic())
    raise err  # unreachable: _fail raises


def refuse_unavailable(context: grpc.ServicerContext, name: str, message: str) -> None:
    """Ends the call with UNAVAILABLE and message before any work; raises. Logged at debug level
    (a draining server refuses every call its clients send); the error model leaves the status as
    set."""
    _log.debug("rpc=%s request_id=%s code=UNAVAILABLE error=%r", name, request_id_of(context), message)
    context.abort(grpc.StatusCode.UNAVAILABLE, message)


def _has_status(context: grpc.ServicerContext) -> bool:
    try:
        return context.code() is not None
    except NotImplementedError:  # grpc_testing's context keeps no code
        return False


def _ok(name: str, request_id: str, started: float) -> None:
    _log.debug("rpc=%s request_id=%s code=OK ms=%.1f", name, request_id, (time.monotonic() - started) * 1000)


def unary_answer(
    behaviour: Callable[[Any, grpc.ServicerContext], Any], name: str, method: str = ""
) -> Callable[..., Any]:
    """behaviour (one response) with request id, status mapping and logging (see module docstring);
    method: the full name (/package.Service/Method) metrics count the call under (default: name)."""
    observe = metrics.rpc_observer(method or name)

    def call(request: Any, context: grpc.ServicerContext) -> Any:
        started = time.monotonic()
        _current.set(_Call(context))
        try:
            response = behaviour(request, context)
        except Exception as err:
            _fail(context, name, err, _answered_id(context), started)
            raise  # unreachable: _fail raises
        finally:
            observe(context, started)
            _current.set(None)
        if _log.isEnabledFor(logging.DEBUG):
            _ok(name, request_id_of(context), started)
        return response

    return call


def streamed_answer(
    behaviour: Callable[[Any, grpc.ServicerContext], Iterator[Any]], name: str, method: str = ""
) -> Callable[..., Iterator[Any]]:
    """behaviour (a stream of responses) as unary_answer wraps a single one."""
    observe = metrics.rpc_observer(method or name)

    def call(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        started = time.monotonic()
        _current.set(_Call(context))
        try:
            yield from behaviour(request, context)
        except Exception as err:
            _fail(context, name, err, _answered_id(context), started)
            raise
        finally:
            observe(context, started)
            _current.set(None)
        if _log.isEnabledFor(logging.DEBUG):
            _ok(name, request_id_of(context), started)

    return call


def handler_parts(handler: grpc.RpcMethodHandler) -> tuple[Callable[..., grpc.RpcMethodHandler], Any]:
    """The factory that makes a handler of handler's kind, and handler's behaviour: what a wrapper
    of the behaviour needs to make the wrapped handler."""
    kind = (handler.request_streaming, handler.response_streaming)
    return {
        (False, False): (grpc.unary_unary_rpc_method_handler, handler.unary_unary),
        (False, True): (grpc.unary_stream_rpc_method_handler, handler.unary_stream),
        (True, False): (grpc.stream_unary_rpc_method_handler, handler.stream_unary),
        (True, True): (grpc.stream_stream_rpc_method_handler, handler.stream_stream),
    }[kind]


def mapped_handler(handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
    """handler with its behaviour wrapped by unary_answer or streamed_answer."""
    name = method.rsplit("/", 1)[-1]
    make, behaviour = handler_parts(handler)
    wrap = streamed_answer if handler.response_streaming else unary_answer
    wrapped = wrap(behaviour, name, method)
    # grpcio runs a method on the thread pool its behaviour names (see api.limits.CallPool).
    pool = getattr(behaviour, "experimental_thread_pool", None)
    if pool is not None:
        setattr(wrapped, "experimental_thread_pool", pool)  # noqa: B010 - an attribute grpcio reads
    return make(
        wrapped,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )
