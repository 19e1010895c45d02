"""Typed Python client for auditlog. The generated stubs are in the `audit.v1` package."""

from __future__ import annotations

from auditlog_client.checkpoints import CheckpointState, LogInconsistentError
from auditlog_client.client import AuditClient
from auditlog_client.errors import (
    AuditLogClientError,
    FailedPrecondition,
    FieldViolation,
    InternalError,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from auditlog_client.verify import VerificationError

__all__ = [
    "AuditClient",
    "AuditLogClientError",
    "CheckpointState",
    "FailedPrecondition",
    "FieldViolation",
    "InternalError",
    "InvalidArgument",
    "LogInconsistentError",
    "NotFound",
    "Unavailable",
    "VerificationError",
]
