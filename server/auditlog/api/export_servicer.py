"""audit.v1.ExportService: validation and conversion at the edge; jobs run in the export runner."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import datetime

import grpc
from google.api import httpbody_pb2  # type: ignore[import-untyped]

from audit.v1 import export_service_pb2 as pb
from audit.v1 import export_service_pb2_grpc
from auditlog.api.convert import filter_to_proto
from auditlog.api.download_urls import DownloadRefusedError, DownloadSigner
from auditlog.api.limits import StreamLimiter
from auditlog.api.principal import Role, current_principal
from auditlog.api.read_audit import ReadAuditor
from auditlog.domain.filters import FILTER_FIELDS
from auditlog.domain.page_token import PageTokenCodec
from auditlog.domain.requests import ExportSpec, validate_export_spec
from auditlog.domain.validation import validate_page_size, validate_uuid
from auditlog.errors import (
    FailedPreconditionError,
    FieldViolation,
    InvalidArgumentError,
    NotFoundError,
    ResourceExhaustedError,
)
from auditlog.export.formats import FORMATS, file_name_for
from auditlog.export.jobs import ExportJob, JobStatus
from auditlog.export.setup import Exports
from auditlog.export.storage import ExportStorage
from auditlog.storage.api import LogReader

# HttpBody chunk size of DownloadExportContent: big enough for throughput, far below gRPC's 4 MiB.
CONTENT_CHUNK = 256 * 1024


def _validate_spec(request: pb.CreateExportRequest) -> ExportSpec:
    spec = request.export
    return validate_export_spec(
        {"job_name": spec.job_name, "export_format": spec.export_format}
        if request.HasField("export")
        else None,
        {name: getattr(spec.filters, name) for name in FILTER_FIELDS},
        request.requested_by,
        FORMATS,
    )


_EXPORTS = "exports"


def _encode_token(codec: PageTokenCodec, job: ExportJob) -> str:
    return codec.encode(_EXPORTS, {"c": job.created_at.isoformat(), "i": str(job.id)})


def _decode_token(codec: PageTokenCodec, token: str) -> tuple[datetime, uuid.UUID]:
    data = codec.decode(_EXPORTS, "page_token", token)
    return datetime.fromisoformat(data["c"]), uuid.UUID(data["i"])


def job_to_proto(job: ExportJob) -> pb.ExportJob:
    message = pb.ExportJob(
        id=str(job.id),
        job_name=job.job_name,
        export_format=job.export_format,
        filters=filter_to_proto(job.filters),
        requested_by=job.requested_by,
        status=job.status.value,
        error=job.error,
        rows_written=job.rows_written,
        rows_expected=job.rows_expected,
        max_sequence=job.max_sequence,
        file_sha256=job.file_sha256,
        file_size=job.file_size,
        file_name=job.file_name,
    )
    message.created_at.FromDatetime(job.created_at)
    if job.started_at is not None:
        message.started_at.FromDatetime(job.started_at)
    if job.finished_at is not None:
        message.finished_at.FromDatetime(job.finished_at)
    return message


def _requested_by(asked: str) -> str:
    """Who the job is recorded as requested by: the caller's principal with auth on (a different
    name in the request is refused rather than silently replaced), the request's word with it off."""
    principal = current_principal()
    if principal is None:
        return asked
    if asked and asked != principal.name:
        raise InvalidArgumentError(
            [
                FieldViolation(
                    "requested_by",
                    f"got {asked!r}, want it empty or {principal.name!r}: with authentication on, "
                    "the caller's principal is recorded",
                )
            ]
        )
    return principal.name


class ExportServicer(export_service_pb2_grpc.ExportServiceServicer):
    def __init__(
        self,
        exports: Exports,
        events: LogReader,
        clock: Callable[[], datetime],
        tokens: PageTokenCodec,
        *,
        streams: StreamLimiter,
        max_jobs: int,
        max_jobs_per_principal: int | None = None,
        signer: DownloadSigner | None = None,
        reads: ReadAuditor | None = None,
    ) -> None:
        self._exports = exports
        self._events = events
        self._clock = clock
        self._streams = streams
        self._max_jobs = max_jobs
        self._max_jobs_per_principal = max_jobs_per_principal
        # Signs local download URLs (None: unsigned, for servicers built without a database key).
        self._signer = signer
        self._reads = reads or ReadAuditor(None, enabled=False)
        self._tokens = tokens

    def _get(self, raw_id: str) -> ExportJob:
        job_id = validate_uuid("id", raw_id)
        job = self._exports.jobs.get(job_id)
        if job is None:
            raise NotFoundError(f"no export job has id {job_id}")
        return job

    @staticmethod
    def _require_completed(job: ExportJob) -> None:
        if job.status is JobStatus.FAILED:
            raise FailedPreconditionError(f"export job {job.id} failed ({job.error}); there is no file")
        if job.status is not JobStatus.COMPLETED:
            raise FailedPreconditionError(
                f"export job {job.id} is {job.status.value}; its file is available once it has completed"
            )

    def _storage_of(self, job: ExportJob) -> ExportStorage:
        if job.storage == "s3":
            if self._exports.s3 is None:
                raise FailedPreconditionError(
                    f"export job {job.id} is stored in S3, but no S3 bucket is configured (S3_BUCKET_NAME)"
                )
            return self._exports.s3
        return self._exports.local

    def CreateExport(self, request: pb.CreateExportRequest, context: grpc.ServicerContext) -> pb.ExportJob:
        spec = _validate_spec(request)
        job = ExportJob(
            id=uuid.uuid4(),
            job_name=spec.job_name,
            export_format=spec.export_format,
            filters=spec.event_filter,
            requested_by=_requested_by(spec.requested_by),
            status=JobStatus.PENDING,
            error="",
            rows_written=0,
            rows_expected=0,
            # The snapshot bound: events recorded after this moment are never part of the job.
            max_sequence=self._events.head().sequence,
            file_name=file_name_for(spec.job_name, FORMATS[spec.export_format]),
            file_sha256="",
            file_size=0,
            storage="",
            location="",
            attempts=0,
            created_at=self._clock(),
            started_at=None,
            finished_at=None,
        )
        # Per principal with auth on (requested_by is then the principal's name).
        per_principal = self._max_jobs_per_principal if current_principal() is not None else None
        if not self._exports.jobs.create(job, max_active=self._max_jobs, max_active_requester=per_principal):
            raise ResourceExhaustedError(
                f"too many export jobs: got {self._max_jobs} pending or running, want fewer;"
                " retry when one has finished"
            )
        self._exports.runner.notify()
        self._reads.record(
            "CreateExport", 0, spec.event_filter, job_id=str(job.id), export_format=spec.export_format
        )
        return job_to_proto(job)

    def ListExports(
        self, request: pb.ListExportsRequest, context: grpc.ServicerContext
    ) -> pb.ListExportsResponse:
        page_size = validate_page_size("page_size", request.page_size)
        after = _decode_token(self._tokens, request.page_token) if request.page_token else None
        jobs = self._exports.jobs.list_page(page_size + 1, after)
        next_token = ""
        if len(jobs) > page_size:
            jobs = jobs[:page_size]
            next_token = _encode_token(self._tokens, jobs[-1])
        return pb.ListExportsResponse(exports=[job_to_proto(j) for j in jobs], next_page_token=next_token)

    def GetExport(self, request: pb.GetExportRequest, context: grpc.ServicerContext) -> pb.ExportJob:
        return job_to_proto(self._get(request.id))

    def GetExportDownload(
        self, request: pb.GetExportDownloadRequest, context: grpc.ServicerContext
    ) -> pb.GetExportDownloadResponse:
        job = self._get(request.id)
        self._require_completed(job)
        link = self._storage_of(job).download_link(job.location, job_id=str(job.id), file_name=job.file_name)
        url, expires_at = link.url, link.expires_at
        if job.storage == "local" and self._signer is not None:
            url, expires_at = self._signer.sign(url, str(job.id))
        response = pb.GetExportDownloadResponse(
            download_url=url,
            file_name=job.file_name,
            file_sha256=job.file_sha256,
            file_size=job.file_size,
            manifest=job.manifest,
        )
        if expires_at is not None:
            response.expires_at.FromDatetime(expires_at)
        self._reads.record("GetExportDownload", job.rows_written, job.filters, job_id=str(job.id))
        return response

    def DownloadExportContent(
        self, request: pb.DownloadExportContentRequest, context: grpc.ServicerContext
    ) -> Iterator[httpbody_pb2.HttpBody]:
        yield from self._streams.guard(context, "DownloadExportContent", self._content(request, context))

    def _authorise_download(self, request: pb.DownloadExportContentRequest) -> None:
        """A signed URL (checked whoever calls), or else the auditor role; with auth off and no
        signature, anyone (as every other call then)."""
        if request.signature or request.expires:
            if self._signer is None:
                raise DownloadRefusedError("download URL refused: this server does not sign download URLs")
            self._signer.check(str(validate_uuid("id", request.id)), request.expires, request.signature)
            return
        principal = current_principal()
        if principal is not None and principal.role not in (Role.AUDITOR, Role.ADMIN):
            raise DownloadRefusedError(
                f"downloading an export needs the auditor role or a signed URL from GetExportDownload;"
                f" {principal.name} has the {principal.role.value} role"
            )

    def _content(
        self, request: pb.DownloadExportContentRequest, context: grpc.ServicerContext
    ) -> Iterator[httpbody_pb2.HttpBody]:
        self._authorise_download(request)
        job = self._get(request.id)
        self._require_completed(job)
        if job.storage != "local":
            raise FailedPreconditionError(
                f"export job {job.id} is stored in S3; download it from the URL of GetExportDownload"
            )
        content_type = FORMATS[job.export_format].content_type
        self._reads.record("DownloadExportContent", job.rows_written, job.filters, job_id=str(job.id))
        chunks = self._exports.local.open_chunks(job.location, CONTENT_CHUNK)
        first = next(chunks, b"")  # opens the file, so a missing file fails before any header
        # Envoy's transcoder passes response metadata through as HTTP headers: the file name.
        context.send_initial_metadata((("content-disposition", f'attachment; filename="{job.file_name}"'),))
        yield httpbody_pb2.HttpBody(content_type=content_type, data=first)
        for chunk in chunks:
            if not context.is_active():
                return
            yield httpbody_pb2.HttpBody(content_type=content_type, data=chunk)

    def ListExportFormats(
        self, request: pb.ListExportFormatsRequest, context: grpc.ServicerContext
    ) -> pb.ListExportFormatsResponse:
        return pb.ListExportFormatsResponse(
            formats=[
                pb.ExportFormat(
                    name=f.name,
                    content_type=f.content_type,
                    file_extension=f.file_extension,
                    description=f.description,
                )
                for f in FORMATS.values()
            ]
        )
