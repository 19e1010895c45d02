"""The one place where errors become gRPC statuses.

`rpc_method` wraps every servicer method: it tags the call with a request id (the caller's
`x-request-id` metadata, or a new one), logs one line per call, and turns exceptions into statuses.
Errors of our own carry a message safe for clients; anything else becomes INTERNAL with only the
request id, so no stack trace, SQL or path ever reaches a caller.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import grpc
import psycopg
import psycopg_pool
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from auditlog.errors import (
    AuditLogError,
    FailedPreconditionError,
    FieldViolation,
    InvalidArgumentError,
    NotFoundError,
    ResourceExhaustedError,
    UnavailableError,
)

_log = logging.getLogger("auditlog.rpc")
Request = TypeVar("Request")
Response = TypeVar("Response")

_CODES: list[tuple[type[AuditLogError], int]] = [
    (InvalidArgumentError, code_pb2.INVALID_ARGUMENT),
    (NotFoundError, code_pb2.NOT_FOUND),
    (FailedPreconditionError, code_pb2.FAILED_PRECONDITION),
    (UnavailableError, code_pb2.UNAVAILABLE),
    (ResourceExhaustedError, code_pb2.RESOURCE_EXHAUSTED),
]


def status_for(err: BaseException, request_id: str) -> status_pb2.Status:
    """The google.rpc.Status a client sees for err."""
    if isinstance(err, (psycopg.OperationalError, psycopg_pool.PoolTimeout)):
        err = UnavailableError("the database is unavailable; retry later")
    for cls, code in _CODES:
        if isinstance(err, cls):
            status = status_pb2.Status(code=code, message=str(err))
            if isinstance(err, InvalidArgumentError):
                detail = any_pb2.Any()
                detail.Pack(
                    error_details_pb2.BadRequest(
                        field_violations=[
                            error_details_pb2.BadRequest.FieldViolation(
                                field=v.field, description=v.description
                            )
                            for v in err.violations
                        ]
                    )
                )
                status.details.append(detail)
            return status
    return status_pb2.Status(code=code_pb2.INTERNAL, message=f"internal error (request id {request_id})")


def _request_id(context: grpc.ServicerContext) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == "x-request-id" and isinstance(value, str) and 0 < len(value) <= 128:
            return value
    return uuid.uuid4().hex


def _fail(
    context: grpc.ServicerContext, name: str, err: BaseException, request_id: str, started: float
) -> None:
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
    context.set_trailing_metadata(rich.trailing_metadata)
    context.abort(rich.code, rich.details)


def refuse(context: grpc.ServicerContext, name: str, violations: list[FieldViolation]) -> None:
    """Ends the call with INVALID_ARGUMENT listing violations, logged as rpc_method logs; raises."""
    fail(context, name, InvalidArgumentError(violations))


def fail(context: grpc.ServicerContext, name: str, err: AuditLogError) -> None:
    """Ends the call with err's status, logged as rpc_method logs; raises."""
    _fail(context, name, err, _request_id(context), time.monotonic())


def refuse_unavailable(context: grpc.ServicerContext, name: str, message: str) -> None:
    """Ends the call with UNAVAILABLE and message before any work; raises. Logged at debug level:
    a draining server refuses every call its clients send."""
    _log.debug("rpc=%s request_id=%s code=UNAVAILABLE error=%r", name, _request_id(context), message)
    context.abort(grpc.StatusCode.UNAVAILABLE, message)


def rpc_method(method: Callable[[Any, Request, grpc.ServicerContext], Response]) -> Callable[..., Response]:
    """Wraps a unary servicer method (see module docstring)."""

    @functools.wraps(method)
    def wrapper(self: Any, request: Request, context: grpc.ServicerContext) -> Response:
        request_id = _request_id(context)
        started = time.monotonic()
        try:
            response = method(self, request, context)
        except Exception as err:
            _fail(context, method.__name__, err, request_id, started)
            raise  # unreachable: abort raises
        _log.debug(
            "rpc=%s request_id=%s code=OK ms=%.1f",
            method.__name__,
            request_id,
            (time.monotonic() - started) * 1000,
        )
        return response

    return wrapper


def rpc_stream(
    method: Callable[[Any, Request, grpc.ServicerContext], Iterator[Response]],
) -> Callable[..., Iterator[Response]]:
    """Wraps a server-streaming servicer method (see module docstring)."""

    @functools.wraps(method)
    def wrapper(self: Any, request: Request, context: grpc.ServicerContext) -> Iterator[Response]:
        request_id = _request_id(context)
        started = time.monotonic()
        try:
            yield from method(self, request, context)
        except Exception as err:
            _fail(context, method.__name__, err, request_id, started)
            raise
        _log.debug(
            "rpc=%s request_id=%s code=OK ms=%.1f",
            method.__name__,
            request_id,
            (time.monotonic() - started) * 1000,
        )

    return wrapper
