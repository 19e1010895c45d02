"""The export runner's workers outlive any failure of a job, over the in-memory backend."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from auditlog.domain.filters import EventFilter
from auditlog.export.jobs import ExportJob, JobStatus
from auditlog.export.local_storage import LocalStorage
from auditlog.export.runner import ExportRunner, RunnerSettings
from auditlog.storage.memory import MemoryJobs, MemoryLog


class BrokenOnce(MemoryJobs):
    """A queue whose first job breaks in a way no handler names, even when marked failed."""

    def __init__(self) -> None:
        super().__init__()
        self.broken: uuid.UUID | None = None

    def set_expected(self, job_id: uuid.UUID, rows_expected: int, now: datetime) -> bool:
        if self.broken is None:
            self.broken = job_id
            raise RuntimeError("unexpected")
        return super().set_expected(job_id, rows_expected, now)

    def fail(self, job_id: uuid.UUID, reason: str, now: datetime) -> bool:
        if job_id == self.broken:
            raise RuntimeError("cannot mark failed either")
        return super().fail(job_id, reason, now)


def job(name: str) -> ExportJob:
    now = datetime.now(UTC)
    return ExportJob(
        id=uuid.uuid4(), job_name=name, export_format="csv", filters=EventFilter(), requested_by="",
        status=JobStatus.PENDING, error="", rows_written=0, rows_expected=0, max_sequence=-1,
        file_name=f"{name}.csv", file_sha256="", file_size=0, storage="", location="", attempts=0,
        created_at=now, started_at=None, finished_at=None,
    )  # fmt: skip


def test_a_worker_goes_on_after_a_job_that_cannot_even_be_marked_failed(tmp_path: Path) -> None:
    jobs = BrokenOnce()
    first, second = job("first"), job("second")
    jobs.create(first)
    jobs.create(second)
    runner = ExportRunner(
        jobs,
        MemoryLog(),
        LocalStorage(tmp_path, "http://localhost:8000"),
        tmp_path / ".spool",
        clock=lambda: datetime.now(UTC),
        settings=RunnerSettings(workers=1, poll_interval=0.05),
    )
    runner.start()
    try:
        deadline = time.monotonic() + 10
        while (done := jobs.get(second.id)) is None or done.status is not JobStatus.COMPLETED:
            assert time.monotonic() < deadline, f"the second job did not complete: {done}"
            time.sleep(0.05)
    finally:
        runner.stop()
    assert jobs.broken in (first.id, second.id)
