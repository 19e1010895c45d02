"""Wiring of the export subsystem from the configuration (called by auditlog.app)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from auditlog.config import Config
from auditlog.export.evidence import ExportEvidence
from auditlog.export.jobs import JobStore
from auditlog.export.local_storage import LocalStorage
from auditlog.export.runner import ExportRunner, RunnerSettings
from auditlog.export.s3_storage import S3Storage, s3_client_for
from auditlog.export.storage import ExportStorage
from auditlog.storage.api import ExportJobQueue
from auditlog.storage.postgres.reader import EventStore


@dataclass(frozen=True)
class Exports:
    jobs: ExportJobQueue
    runner: ExportRunner
    # Where new exports go: S3 when S3_BUCKET_NAME is set, else the local folder.
    storage: ExportStorage
    # Always present: serves files of jobs completed while no bucket was configured.
    local: LocalStorage
    s3: S3Storage | None


def log_origin(config: Config) -> str:
    """The log's name in OCSF records: the public address without its scheme (host[:port][/path])."""
    parts = urlsplit(config.public_base_url)
    return f"{parts.netloc}{parts.path}".rstrip("/") or "auditlog"


def create_exports(
    config: Config,
    events: EventStore,
    *,
    clock: Callable[[], datetime],
    settings: RunnerSettings | None = None,
    evidence: ExportEvidence | None = None,
) -> Exports:
    root = config.data_dir / "exports"
    local = LocalStorage(root, config.public_base_url)
    s3: S3Storage | None = None
    if config.s3_bucket_name:
        client = s3_client_for(config)
        s3 = S3Storage(
            client, config.s3_bucket_name, url_expiry=timedelta(seconds=config.export_url_expiry), clock=clock
        )
    storage: ExportStorage = s3 if s3 is not None else local
    jobs = JobStore(events.pool)
    settings = settings or RunnerSettings(workers=config.export_workers)
    if settings.log_origin is None:
        settings = dataclasses.replace(settings, log_origin=log_origin(config))
    # The spool sits under the same root as the local files so that finishing a local export is a
    # rename, never a copy.
    runner = ExportRunner(
        jobs, events, storage, root / ".spool", clock=clock, settings=settings, evidence=evidence
    )
    return Exports(jobs, runner, storage, local, s3)
