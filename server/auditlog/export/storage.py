"""Where finished export files go: the interface both backends implement, and their one error."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from google.rpc import code_pb2

from auditlog.errors import AuditLogError


class StorageError(AuditLogError):
    """Storing or serving an export file failed (the folder or S3 refused or did not answer);
    the message is the job's failure reason. Retrying later may succeed."""

    code = code_pb2.UNAVAILABLE


class ExportFileMissingError(StorageError):
    """A completed export's file is gone from (or was never inside) the local exports folder:
    retrying cannot help."""

    code = code_pb2.FAILED_PRECONDITION


@dataclass(frozen=True)
class StoredFile:
    """Where a backend put a file: its name ("local" or "s3") and a location it understands."""

    storage: str
    location: str


@dataclass(frozen=True)
class DownloadLink:
    url: str
    expires_at: datetime | None


class ExportStorage(Protocol):
    name: str

    def store(self, source: Path, *, job_id: str, file_name: str, content_type: str) -> StoredFile:
        """Takes the finished file at source (which the backend may move or delete)."""

    def download_link(self, location: str, *, job_id: str, file_name: str) -> DownloadLink:
        """A URL from which a client can GET the file."""
