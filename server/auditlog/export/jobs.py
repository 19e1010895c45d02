"""The export job value and the named queries of the export_jobs table (the jobs' work queue)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from auditlog.domain.canonical import format_timestamp
from auditlog.domain.filters import EventFilter
from auditlog.errors import ResourceExhaustedError
from auditlog.storage.postgres.rows import translated_errors


def requester_busy(requested_by: str, limit: int) -> ResourceExhaustedError:
    """The refusal of a job whose requester already has limit jobs pending or running."""
    return ResourceExhaustedError(
        f"too many export jobs for {requested_by}: got {limit} pending or running, want fewer;"
        " retry when one has finished"
    )


class JobStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


@dataclass(frozen=True)
class ExportJob:
    id: uuid.UUID
    job_name: str
    export_format: str
    filters: EventFilter
    requested_by: str
    status: JobStatus
    error: str
    rows_written: int
    rows_expected: int
    max_sequence: int
    file_name: str
    file_sha256: str
    file_size: int
    storage: str
    location: str
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    # The signed manifest of a completed export (export.evidence); "" without one.
    manifest: str = ""


@dataclass(frozen=True)
class FinishedExport:
    """What a completed job records about its file (the ExportJob fields of the same names)."""

    rows_written: int
    file_sha256: str
    file_size: int
    storage: str
    location: str
    manifest: str = ""


_COLUMNS = tuple(f.name for f in fields(ExportJob))
_RETURNING = sql.SQL(", ").join(map(sql.Identifier, _COLUMNS))
_SELECT = sql.SQL("SELECT {} FROM export_jobs").format(_RETURNING)
# Advisory lock key serialising CreateExport's cap check ("auditexp" in ASCII), apart from migrations'.
_CREATE_LOCK = 0x6175646974657870


def filter_to_json(event_filter: EventFilter) -> dict[str, str]:
    """The set fields of a filter, dates as RFC 3339 UTC (also the JSON export's `filters`)."""
    out: dict[str, str] = {}
    for name, value in event_filter.values().items():
        if isinstance(value, datetime):
            out[name] = format_timestamp(value)
        elif value:
            out[name] = value
    return out


def filter_from_json(data: dict[str, Any]) -> EventFilter:
    texts = {name: value for name, value in data.items() if name not in _DATES}
    start, end = (datetime.fromisoformat(data[name]) if name in data else None for name in _DATES)
    return EventFilter.of(texts, start, end)


_DATES = ("start_date", "end_date")


def _job_from_row(row: Sequence[Any]) -> ExportJob:
    values = dict(zip(_COLUMNS, row, strict=True))
    values["filters"] = filter_from_json(values["filters"])
    values["status"] = JobStatus(values["status"])
    return ExportJob(**values)


class JobStore:
    """Queries of export_jobs through the service pool. Status changes of a running job check the
    status too, so a job another process took over (after a lost lease) is not overwritten."""

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        with translated_errors(), self._pool.connection() as conn:
            yield conn

    def create(
        self, job: ExportJob, *, max_active: int | None = None, max_active_requester: int | None = None
    ) -> bool:
        """Inserts job; False (nothing inserted) when max_active jobs are already pending or running;
        ResourceExhaustedError when max_active_requester of job.requested_by's are. An advisory lock
        makes the counts and the insert one step for every process."""
        columns = sql.SQL(", ").join(map(sql.Identifier, _COLUMNS))
        placeholders = sql.SQL(", ").join(sql.Placeholder() * len(_COLUMNS))
        values = [getattr(job, name) for name in _COLUMNS]
        values[_COLUMNS.index("filters")] = Jsonb(filter_to_json(job.filters))
        values[_COLUMNS.index("status")] = job.status.value
        with self._connection() as conn, conn.transaction():
            if max_active is not None or max_active_requester is not None:
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_CREATE_LOCK,))
                row = conn.execute(
                    "SELECT count(*), count(*) FILTER (WHERE requested_by = %s) FROM export_jobs"
                    " WHERE status IN ('pending', 'running')",
                    (job.requested_by,),
                ).fetchone()
                if row is not None and max_active_requester is not None and row[1] >= max_active_requester:
                    raise requester_busy(job.requested_by, max_active_requester)
                if row is not None and max_active is not None and row[0] >= max_active:
                    return False
            conn.execute(
                sql.SQL("INSERT INTO export_jobs ({}) VALUES ({})").format(columns, placeholders), values
            )
        return True

    def get(self, job_id: uuid.UUID) -> ExportJob | None:
        with self._connection() as conn:
            row = conn.execute(_SELECT + sql.SQL(" WHERE id = %s"), (job_id,)).fetchone()
        return None if row is None else _job_from_row(row)

    def list_page(self, limit: int, after: tuple[datetime, uuid.UUID] | None) -> list[ExportJob]:
        """Newest first; after is the (created_at, id) of the last job of the previous page."""
        query = _SELECT
        params: list[Any] = []
        if after is not None:
            query += sql.SQL(" WHERE (created_at, id) < (%s, %s)")
            params.extend(after)
        query += sql.SQL(" ORDER BY created_at DESC, id DESC LIMIT %s")
        params.append(limit)
        with self._connection() as conn:
            rows = conn.execute(query, params).fetchall()
        return [_job_from_row(row) for row in rows]

    def claim_next(self, now: datetime) -> ExportJob | None:
        """Marks the oldest pending job running and returns it; None when none is pending.
        SKIP LOCKED lets workers of several processes claim at once without waiting or sharing."""
        query = (
            sql.SQL(
                "UPDATE export_jobs SET status = 'running', started_at = %s, heartbeat_at = %s,"
                " attempts = attempts + 1, rows_written = 0, error = ''"
                " WHERE id = (SELECT id FROM export_jobs WHERE status = 'pending'"
                " ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING "
            )
            + _RETURNING
        )
        with self._connection() as conn:
            row = conn.execute(query, (now, now)).fetchone()
        return None if row is None else _job_from_row(row)

    def _update_running(self, job_id: uuid.UUID, assignments: str, params: Sequence[Any]) -> bool:
        query = f"UPDATE export_jobs SET {assignments} WHERE id = %s AND status = 'running'"
        with self._connection() as conn:
            cur = conn.execute(query.encode(), [*params, job_id])
            return cur.rowcount == 1

    def set_expected(self, job_id: uuid.UUID, rows_expected: int, now: datetime) -> bool:
        return self._update_running(job_id, "rows_expected = %s, heartbeat_at = %s", (rows_expected, now))

    def set_progress(self, job_id: uuid.UUID, rows_written: int, now: datetime) -> bool:
        return self._update_running(job_id, "rows_written = %s, heartbeat_at = %s", (rows_written, now))

    def complete(self, job_id: uuid.UUID, finished: FinishedExport, now: datetime) -> bool:
        return self._update_running(
            job_id,
            "status = 'completed', rows_written = %s, file_sha256 = %s, file_size = %s, storage = %s,"
            " location = %s, finished_at = %s, manifest = %s",
            (
                finished.rows_written,
                finished.file_sha256,
                finished.file_size,
                finished.storage,
                finished.location,
                now,
                finished.manifest,
            ),
        )

    def fail(self, job_id: uuid.UUID, reason: str, now: datetime) -> bool:
        return self._update_running(job_id, "status = 'failed', error = %s, finished_at = %s", (reason, now))

    def release(self, job_id: uuid.UUID) -> bool:
        """Back to pending, e.g. when the server stops mid-run; the interrupted run does not count
        as an attempt."""
        return self._update_running(
            job_id, "status = 'pending', rows_written = 0, attempts = greatest(attempts - 1, 0)", ()
        )

    def heartbeat(self, job_ids: Sequence[uuid.UUID], now: datetime) -> None:
        if not job_ids:
            return
        with self._connection() as conn:
            conn.execute(
                "UPDATE export_jobs SET heartbeat_at = %s WHERE id = ANY(%s) AND status = 'running'",
                (now, list(job_ids)),
            )

    def recover_abandoned(self, now: datetime, lease: timedelta, max_attempts: int) -> tuple[int, int]:
        """Running jobs whose heartbeat is older than lease were left by a process that died: they
        go back to pending, or fail once they have used max_attempts runs. Returns (requeued, failed)."""
        stale = now - lease
        with self._connection() as conn, conn.transaction():
            failed = conn.execute(
                "UPDATE export_jobs SET status = 'failed', finished_at = %s, error = %s"
                " WHERE status = 'running' AND heartbeat_at < %s AND attempts >= %s",
                (
                    now,
                    f"the server stopped while running this job {max_attempts} times; giving up",
                    stale,
                    max_attempts,
                ),
            ).rowcount
            requeued = conn.execute(
                "UPDATE export_jobs SET status = 'pending', rows_written = 0"
                " WHERE status = 'running' AND (heartbeat_at IS NULL OR heartbeat_at < %s)",
                (stale,),
            ).rowcount
        return requeued, failed
