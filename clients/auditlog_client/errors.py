"""Client exceptions, one class per gRPC status, mapped once in `error_from_rpc`."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


class AuditLogClientError(Exception):
    """Root of every error the client raises for a failed call."""

    def __init__(
        self, code: grpc.StatusCode, message: str, violations: list[FieldViolation] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.violations = violations or []


class InvalidArgument(AuditLogClientError):
    """The request was refused; `violations` names the fields."""


class NotFound(AuditLogClientError):
    pass


class FailedPrecondition(AuditLogClientError):
    pass


class Unavailable(AuditLogClientError):
    """The server or its database is unreachable; retry (with the same request_id) later."""


class DeadlineExceeded(AuditLogClientError):
    pass


class Unauthenticated(AuditLogClientError):
    """No credentials, or an unknown or revoked key (the server requires auth)."""


class PermissionDenied(AuditLogClientError):
    """The caller's role does not allow the call; the message names the role needed."""


class InternalError(AuditLogClientError):
    pass


_REGISTRY: dict[grpc.StatusCode, type[AuditLogClientError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.INTERNAL: InternalError,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
}


def error_from_rpc(err: grpc.RpcError) -> AuditLogClientError:
    """The client exception for a failed call, with BadRequest field violations when present."""
    call = err if isinstance(err, grpc.Call) else None
    code = call.code() if call is not None else grpc.StatusCode.UNKNOWN
    message = (call.details() if call is not None else str(err)) or ""
    violations: list[FieldViolation] = []
    status = rpc_status.from_call(call) if call is not None else None
    if status is not None:
        for detail in status.details:
            if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad_request = error_details_pb2.BadRequest()
                detail.Unpack(bad_request)
                violations.extend(
                    FieldViolation(v.field, v.description) for v in bad_request.field_violations
                )
    return _REGISTRY.get(code, AuditLogClientError)(code, message, violations)
