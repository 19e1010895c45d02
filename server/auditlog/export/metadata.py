"""What an export file says about itself, and the XLSX sheet bound: shared by the writers and the
runner without either importing the other."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from auditlog.domain.canonical import format_timestamp

# Data rows per sheet: Excel's limit (1,048,576 rows) less the header row.
XLSX_MAX_DATA_ROWS = 1_048_575


@dataclass(frozen=True)
class ExportMetadata:
    """What an export file says about itself; known before the first row is written."""

    job_id: uuid.UUID
    job_name: str
    export_format: str
    requested_by: str
    created_at: datetime
    filters: dict[str, str]
    max_sequence: int
    row_count: int
    first_sequence: int | None
    last_sequence: int | None
    last_chain_hash: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "job_id": str(self.job_id),
            "job_name": self.job_name,
            "export_format": self.export_format,
            "requested_by": self.requested_by,
            "created_at": format_timestamp(self.created_at),
            "filters": self.filters,
            "max_sequence": self.max_sequence,
            "row_count": self.row_count,
            "first_sequence": self.first_sequence,
            "last_sequence": self.last_sequence,
            "last_chain_hash": self.last_chain_hash,
        }
