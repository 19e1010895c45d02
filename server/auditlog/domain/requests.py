"""Validation of whole requests, as plain values (the servicers convert proto to these and back):
every problem of one request is reported together as field violations (`got X, want Y`)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from auditlog.domain.filters import EventFilter
from auditlog.domain.validation import (
    MAX_BATCH_EVENTS,
    MAX_PAGE,
    check_text,
    validate_filter,
    validate_page_size,
)
from auditlog.errors import FieldViolation, InvalidArgumentError

# order_by texts and whether each means descending.
ORDERS = {"": True, "sequence desc": True, "sequence asc": False, "sequence": False}
MAX_JOB_NAME = 200
MAX_REQUESTED_BY = 256


def validate_batch_size(count: int) -> None:
    if not 1 <= count <= MAX_BATCH_EVENTS:
        raise InvalidArgumentError(
            [FieldViolation("events", f"got {count} events, want 1 to {MAX_BATCH_EVENTS}")]
        )


@dataclass(frozen=True)
class ListQuery:
    event_filter: EventFilter
    page_size: int
    descending: bool
    # The page number asked for (0 when paging by token).
    page: int


def validate_list_events(
    filter_fields: Mapping[str, str], *, page_size: int, order_by: str, page: int, has_page_token: bool
) -> ListQuery:
    violations: list[FieldViolation] = []
    event_filter: EventFilter | None = None
    try:
        event_filter = validate_filter(filter_fields)
    except InvalidArgumentError as err:
        violations.extend(err.violations)
    try:
        page_size = validate_page_size("page_size", page_size)
    except InvalidArgumentError as err:
        violations.extend(err.violations)
    order = order_by.strip().lower()
    if order not in ORDERS:
        violations.append(
            FieldViolation("order_by", f"got {order_by!r}, want 'sequence desc' or 'sequence asc'")
        )
    if page < 0 or page > MAX_PAGE:
        violations.append(
            FieldViolation("page", f"got {page}, want 1 to {MAX_PAGE} (use page_token to page deeper)")
        )
    if page and has_page_token:
        violations.append(FieldViolation("page_token", "got both page and page_token, want one of them"))
    if violations or event_filter is None:
        raise InvalidArgumentError(violations)
    return ListQuery(event_filter, page_size, ORDERS[order], 0 if has_page_token else page or 1)


@dataclass(frozen=True)
class VerifyRange:
    start: int
    # None: to the head.
    end: int | None
    verify_all: bool


def validate_verify_range(*, start: int | None, end: int | None, verify_all: bool) -> VerifyRange:
    """start and end as sent (None when absent); checked against the head by the verifier."""
    has_range = start is not None or end is not None
    violations: list[FieldViolation] = []
    if verify_all and has_range:
        violations.append(FieldViolation("verify_all", "got verify_all with a range, want one or the other"))
    first = start or 0
    if first < 0:
        violations.append(FieldViolation("start_sequence", f"got {first}, want at least 0"))
    if end is not None and end < first:
        violations.append(
            FieldViolation("end_sequence", f"got {end}, want at least start_sequence ({first})")
        )
    if violations:
        raise InvalidArgumentError(violations)
    return VerifyRange(first, end, verify_all or not has_range)


@dataclass(frozen=True)
class ExportSpec:
    job_name: str
    export_format: str
    event_filter: EventFilter
    requested_by: str


def validate_export_spec(
    spec: Mapping[str, str] | None,
    filter_fields: Mapping[str, str],
    requested_by: str,
    formats: Collection[str],
) -> ExportSpec:
    """spec: job_name and export_format as sent, None when the request has no export."""
    if spec is None:
        raise InvalidArgumentError(
            [FieldViolation("export", "got nothing, want job_name, export_format and filters")]
        )
    violations: list[FieldViolation] = []
    job_name = spec["job_name"].strip()
    if not job_name:
        violations.append(FieldViolation("export.job_name", "got an empty name, want 1 to 200 characters"))
    check_text("export.job_name", job_name, MAX_JOB_NAME, violations)
    export_format = spec["export_format"].strip().lower()
    if export_format not in formats:
        violations.append(
            FieldViolation(
                "export.export_format",
                f"got {spec['export_format'][:20]!r}, want one of {', '.join(formats)}",
            )
        )
    event_filter = EventFilter()
    try:
        event_filter = validate_filter(filter_fields, prefix="export.filters.")
    except InvalidArgumentError as err:
        violations.extend(err.violations)
    check_text("requested_by", requested_by, MAX_REQUESTED_BY, violations)
    if violations:
        raise InvalidArgumentError(violations)
    return ExportSpec(job_name, export_format, event_filter, requested_by.strip())
