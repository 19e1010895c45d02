"""The one exception tree of the service. Each class declares the gRPC status it answers with
(`code`, a google.rpc.Code); auditlog.api.status turns a raised error into that status."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from google.rpc import code_pb2


@dataclass(frozen=True)
class FieldViolation:
    """One bad request field: which, and what was wrong with it (`got X, want Y`)."""

    field: str
    description: str


class AuditLogError(Exception):
    """Root of every error the service raises on purpose. Its message is safe to show a client,
    except under INTERNAL, where a caller sees only the request id."""

    code: ClassVar[int]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # A class without a status of its own would answer some arbitrary code: refuse it at import.
        if not isinstance(getattr(cls, "code", None), int):
            raise TypeError(f"{cls.__qualname__} must declare its gRPC status: code = code_pb2.<CODE>")


class InvalidArgumentError(AuditLogError):
    """The request is malformed; nothing was written."""

    code = code_pb2.INVALID_ARGUMENT

    def __init__(self, violations: list[FieldViolation]) -> None:
        self.violations = list(violations)
        summary = "; ".join(f"{v.field}: {v.description}" for v in self.violations)
        super().__init__(f"invalid request: {summary}")


class NotFoundError(AuditLogError):
    """The named thing does not exist."""

    code = code_pb2.NOT_FOUND


class FailedPreconditionError(AuditLogError):
    """The request is well-formed but the system is not in a state to serve it."""

    code = code_pb2.FAILED_PRECONDITION


class UnavailableError(AuditLogError):
    """A dependency (PostgreSQL, S3) is unreachable; retrying later may succeed."""

    code = code_pb2.UNAVAILABLE


class ResourceExhaustedError(AuditLogError):
    """A bound of the server (streams, export jobs, request bytes in flight) is reached; retry later."""

    code = code_pb2.RESOURCE_EXHAUSTED


class UnauthenticatedError(AuditLogError):
    """No credentials, or credentials the server does not accept."""

    code = code_pb2.UNAUTHENTICATED


class PermissionDeniedError(AuditLogError):
    """The caller is known but may not do this (a role too small, an altered signed URL)."""

    code = code_pb2.PERMISSION_DENIED


class DatabaseUnavailableError(UnavailableError):
    """PostgreSQL could not be reached, or the connection failed mid-call (raised at the storage
    boundary only; whether a write in flight committed is then unknown to the caller)."""

    def __init__(self, message: str = "the database is unavailable; retry later") -> None:
        super().__init__(message)


class ShuttingDownError(UnavailableError):
    """The server is stopping and accepts no new writes."""


class InternalError(AuditLogError):
    """A fault of the server itself (start-up, configuration), not of a request."""

    code = code_pb2.INTERNAL


class ConfigError(InternalError):
    """Bad configuration, detected at start-up."""
