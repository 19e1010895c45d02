"""The export runner: a bounded pool of worker threads taking jobs from the export_jobs table.

Each worker claims the oldest pending job, streams the matching events (server-side cursor, bounded
by the job's max_sequence) through a writer into a spool file, hashes it, hands it to storage and
records the outcome. A keeper thread bumps the heartbeat of the jobs this process runs and returns
jobs abandoned by dead processes to pending (or fails them after `max_attempts` runs), so no job
stays running forever. `stop()` interrupts running jobs between rows and returns them to pending:
they run again after a restart.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from auditlog.errors import UnavailableError
from auditlog.export.evidence import (
    MANIFEST_SUFFIX,
    MANIFEST_TYPE,
    ExportEvidence,
    Manifest,
    NoCheckpointError,
    Prover,
)
from auditlog.export.formats import FORMATS
from auditlog.export.jobs import ExportJob, FinishedExport, filter_to_json
from auditlog.export.storage import ExportStorage, StorageError
from auditlog.export.writers import XLSX_MAX_DATA_ROWS, ExportMetadata, open_writer
from auditlog.storage.api import ExportJobQueue, LogReader, SnapshotSummary
from auditlog.storage.postgres.tree import StoredCheckpoint

_log = logging.getLogger(__name__)
_HASH_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class RunnerSettings:
    workers: int = 2
    # How long a running job may go without a heartbeat before another process takes it over.
    lease: timedelta = timedelta(seconds=60)
    heartbeat_interval: float = 10.0
    # Workers also look for work this often, for jobs created by other processes.
    poll_interval: float = 2.0
    progress_interval: float = 1.0
    max_attempts: int = 3
    sheet_row_limit: int = XLSX_MAX_DATA_ROWS
    # The log's name in OCSF exports; None: export.setup.log_origin of the configuration.
    log_origin: str | None = None


class _InterruptedError(Exception):
    """The runner is stopping; the job goes back to pending."""


class _SnapshotChangedError(Exception):
    """The rows read differ from the snapshot summary (cannot happen to an append-only log)."""


def file_digest(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


class ExportRunner:
    def __init__(
        self,
        jobs: ExportJobQueue,
        events: LogReader,
        storage: ExportStorage,
        spool_dir: Path,
        *,
        clock: Callable[[], datetime],
        settings: RunnerSettings | None = None,
        evidence: ExportEvidence | None = None,
    ) -> None:
        self._jobs = jobs
        # Signed checkpoint, proofs and manifest; None (tests over the in-memory log): no evidence.
        self._evidence = evidence
        self._events = events
        self._storage = storage
        self._spool = spool_dir
        self._clock = clock
        self.settings = settings or RunnerSettings()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._running: set[uuid.UUID] = set()
        self._running_lock = threading.Lock()

    def start(self) -> None:
        self._spool.mkdir(parents=True, exist_ok=True)
        for index in range(self.settings.workers):
            thread = threading.Thread(target=self._work, name=f"export-worker-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)
        keeper = threading.Thread(target=self._keep, name="export-keeper", daemon=True)
        keeper.start()
        self._threads.append(keeper)

    def notify(self) -> None:
        """A job was created: wake a worker now rather than at its next poll."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Interrupts running jobs (they return to pending) and waits for the threads."""
        self._stopping.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)
            if thread.is_alive():
                # Most likely an upload in progress; the lease hands its job to the next process.
                _log.warning("export thread %s did not stop within %.0fs", thread.name, timeout)
        self._threads.clear()

    # -- keeper --------------------------------------------------------------------------------

    def _keep(self) -> None:
        while not self._stopping.is_set():
            try:
                with self._running_lock:
                    running = list(self._running)
                self._jobs.heartbeat(running, self._clock())
                requeued, failed = self._jobs.recover_abandoned(
                    self._clock(), self.settings.lease, self.settings.max_attempts
                )
                if requeued or failed:
                    _log.warning(
                        "export jobs abandoned by a stopped process: requeued=%d failed=%d", requeued, failed
                    )
                    self._wake.set()
            except Exception as err:  # noqa: BLE001 - the keeper must outlive any failure
                _log.warning("export keeper cannot reach the database: %s", err)
            self._stopping.wait(self.settings.heartbeat_interval)

    # -- workers -------------------------------------------------------------------------------

    def _work(self) -> None:
        while not self._stopping.is_set():
            try:
                job = self._jobs.claim_next(self._clock())
            except Exception as err:  # noqa: BLE001 - the worker must outlive any failure
                _log.warning("export worker cannot reach the database: %s", err)
                job = None
            if job is None:
                self._wake.wait(self.settings.poll_interval)
                self._wake.clear()
                continue
            with self._running_lock:
                self._running.add(job.id)
            try:
                self._run(job)
            finally:
                with self._running_lock:
                    self._running.discard(job.id)

    def _run(self, job: ExportJob) -> None:
        _log.info("export job=%s format=%s attempt=%d started", job.id, job.export_format, job.attempts)
        spool = self._spool / f"{job.id}{FORMATS[job.export_format].file_extension}.part"
        manifest_spool = self._spool / f"{job.id}{MANIFEST_SUFFIX}.part"
        try:
            rows, checkpoint = self._write(job, spool)
            # Progress shows every row written while the file goes to storage (which may fail).
            self._jobs.set_progress(job.id, rows, self._clock())
            digest, size = file_digest(spool)
            stored = self._storage.store(
                spool,
                job_id=str(job.id),
                file_name=job.file_name,
                content_type=FORMATS[job.export_format].content_type,
            )
            manifest = ""
            checkpoint = checkpoint or self._checkpoint(job)
            if self._evidence is not None and checkpoint is not None:
                manifest = self._evidence.manifest(
                    Manifest(job.file_name, digest, size, rows, filter_to_json(job.filters), checkpoint)
                )
                # Beside the file in its storage, so that the pair travels together.
                manifest_spool.write_text(manifest, encoding="utf-8")
                self._storage.store(
                    manifest_spool,
                    job_id=str(job.id),
                    file_name=job.file_name + MANIFEST_SUFFIX,
                    content_type=MANIFEST_TYPE,
                )
            self._jobs.complete(
                job.id,
                FinishedExport(rows, digest, size, stored.storage, stored.location, manifest),
                self._clock(),
            )
            _log.info(
                "export job=%s completed rows=%d bytes=%d storage=%s", job.id, rows, size, stored.storage
            )
        except _InterruptedError:
            self._jobs.release(job.id)
            _log.info("export job=%s interrupted by shutdown; back to pending", job.id)
        except StorageError as err:
            self._finish_failed(job, str(err))
        except (_SnapshotChangedError, NoCheckpointError) as err:
            self._finish_failed(job, str(err))
        except UnavailableError as err:
            # The database went away mid-run; if it cannot even be marked failed, the lease
            # returns the job to pending later.
            _log.warning("export job=%s database error: %s", job.id, err)
            self._finish_failed(
                job, "the database became unavailable during the export; create the export again"
            )
        except Exception:  # noqa: BLE001 - whatever broke, the job must end failed, the worker live on
            _log.exception("export job=%s failed unexpectedly", job.id)
            self._finish_failed(job, "internal error while writing the export (see the server log)")
        finally:
            spool.unlink(missing_ok=True)
            manifest_spool.unlink(missing_ok=True)

    def _finish_failed(self, job: ExportJob, reason: str) -> None:
        _log.warning("export job=%s failed: %s", job.id, reason)
        try:
            self._jobs.fail(job.id, reason, self._clock())
        except Exception as err:  # noqa: BLE001 - the lease returns the job later; the worker lives on
            _log.warning("export job=%s cannot be marked failed: %s", job.id, err)

    def _metadata(self, job: ExportJob, summary: SnapshotSummary) -> ExportMetadata:
        return ExportMetadata(
            job_id=job.id,
            job_name=job.job_name,
            export_format=job.export_format,
            requested_by=job.requested_by,
            created_at=job.created_at,
            filters=filter_to_json(job.filters),
            max_sequence=job.max_sequence,
            row_count=summary.row_count,
            first_sequence=summary.first_sequence,
            last_sequence=summary.last_sequence,
            last_chain_hash=None if summary.last_chain_hash is None else summary.last_chain_hash.hex(),
        )

    def _checkpoint(self, job: ExportJob) -> StoredCheckpoint | None:
        """A signed checkpoint covering every event the job may export (to its max_sequence)."""
        if self._evidence is None:
            return None
        try:
            return self._evidence.checkpoint_covering(job.max_sequence + 1, self._stopping)
        except NoCheckpointError:
            if self._stopping.is_set():
                raise _InterruptedError from None
            raise

    def _write(self, job: ExportJob, spool: Path) -> tuple[int, StoredCheckpoint | None]:
        """Writes the job's file to spool; returns the rows written and the checkpoint the export
        was made against."""
        summary = self._events.summarise(job.filters, job.max_sequence)
        self._jobs.set_expected(job.id, summary.row_count, self._clock())
        # Only JSON carries proofs; the other formats need their checkpoint for the manifest only,
        # after the file is stored, so that a storage failure is reported as such.
        checkpoint = self._checkpoint(job) if job.export_format == "json" else None
        with ExitStack() as stack:
            evidence = None
            if checkpoint is not None and self._evidence is not None:
                evidence = (checkpoint, stack.enter_context(self._evidence.prover(checkpoint)))
            rows = self._write_rows(job, spool, summary, evidence)
        return rows, checkpoint

    def _write_rows(
        self,
        job: ExportJob,
        spool: Path,
        summary: SnapshotSummary,
        evidence: tuple[StoredCheckpoint, Prover] | None,
    ) -> int:
        writer = open_writer(
            job.export_format,
            spool,
            self._metadata(job, summary),
            sheet_row_limit=self.settings.sheet_row_limit,
            origin=self.settings.log_origin or "auditlog",
            evidence=evidence,
        )
        rows = 0
        last_sequence: int | None = None
        next_progress = self._clock() + timedelta(seconds=self.settings.progress_interval)
        try:
            for record in self._events.iter_matching(job.filters, max_sequence=job.max_sequence):
                if self._stopping.is_set():
                    raise _InterruptedError
                writer.write(record)
                rows += 1
                last_sequence = record.sequence
                # Checking the clock every row is cheap next to writing the row.
                if rows % 1000 == 0 and self._clock() >= next_progress:
                    self._jobs.set_progress(job.id, rows, self._clock())
                    next_progress = self._clock() + timedelta(seconds=self.settings.progress_interval)
            writer.finish()
        finally:
            writer.close()
        if rows != summary.row_count or last_sequence != summary.last_sequence:
            raise _SnapshotChangedError(
                f"read {rows} rows up to sequence {last_sequence}, want {summary.row_count} up to "
                f"{summary.last_sequence}; the log changed under the export"
            )
        return rows
