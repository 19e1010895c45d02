"""The one exception tree of the service. Each class maps to exactly one gRPC status, in
auditlog.api.status (the only place that knows about gRPC codes)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldViolation:
    """One bad request field: which, and what was wrong with it (`got X, want Y`)."""

    field: str
    description: str


class AuditLogError(Exception):
    """Root of every error the service raises on purpose. Its message is safe to show a client."""


class InvalidArgumentError(AuditLogError):
    """The request is malformed; nothing was written."""

    def __init__(self, violations: list[FieldViolation]) -> None:
        self.violations = list(violations)
        summary = "; ".join(f"{v.field}: {v.description}" for v in self.violations)
        super().__init__(f"invalid request: {summary}")


class NotFoundError(AuditLogError):
    """The named thing does not exist."""


class FailedPreconditionError(AuditLogError):
    """The request is well-formed but the system is not in a state to serve it."""


class UnavailableError(AuditLogError):
    """A dependency (PostgreSQL, S3) is unreachable; retrying later may succeed."""


class ResourceExhaustedError(AuditLogError):
    """A bound of the server (streams, export jobs, request bytes in flight) is reached; retry later."""


class ShuttingDownError(UnavailableError):
    """The server is stopping and accepts no new writes."""


class ConfigError(AuditLogError):
    """Bad configuration, detected at start-up."""
