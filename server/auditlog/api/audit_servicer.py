"""audit.v1.AuditService: validation and conversion at the edge, the work in sequencer and store."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from datetime import datetime

import grpc

from audit.v1 import audit_service_pb2 as pb
from audit.v1 import audit_service_pb2_grpc, event_pb2
from auditlog.api.convert import (
    event_and_details_from_proto,
    event_to_proto,
    fill_event_proto,
    fill_event_proto_from_row,
    filter_from_proto,
)
from auditlog.api.limits import ByteBudget, StreamLimiter
from auditlog.api.rest_limits import MAX_REST_ANSWER_BYTES, fitting_count, transcoded
from auditlog.config import Config
from auditlog.domain.filters import EventFilter, PageToken
from auditlog.domain.page_token import PageTokenCodec
from auditlog.domain.validation import MAX_BATCH_EVENTS, MAX_PAGE, validate_page_size, validate_uuid
from auditlog.domain.verification import BreakKind, LogHead, VerificationResult, verify_stored
from auditlog.errors import FieldViolation, InvalidArgumentError, NotFoundError
from auditlog.sequencer import Sequencer
from auditlog.storage.events import EventStore
from auditlog.storage.search import SearchRow, search_rows
from auditlog.storage.verification import verification_snapshot
from auditlog.storage.verification_records import VerificationRecord, VerificationRecords

BREAK_KINDS = {
    None: pb.BREAK_KIND_UNSPECIFIED,
    BreakKind.LEAF_HASH: pb.BREAK_KIND_LEAF_HASH,
    BreakKind.CHAIN_HASH: pb.BREAK_KIND_CHAIN_HASH,
    BreakKind.LINK: pb.BREAK_KIND_LINK,
    BreakKind.GAP: pb.BREAK_KIND_GAP,
    BreakKind.HEAD: pb.BREAK_KIND_HEAD,
}
_MIB_TEXT = f"{MAX_REST_ANSWER_BYTES >> 20} MiB"
_ORDERS = {"": True, "sequence desc": True, "sequence asc": False, "sequence": False}


# Bounds of one SearchEvents message (documented on SearchEventsResponse): a gRPC stream message
# costs the synchronous server about as much as 50 events, so events travel in batches.
SEARCH_MESSAGE_EVENTS = 1_000
SEARCH_MESSAGE_BYTES = 1 << 20
# What an event adds to its message beyond its own size: the field tag and a length of up to 5 bytes.
_EVENT_FRAMING_BYTES = 6


def search_messages(rows: Iterable[SearchRow]) -> Iterator[pb.SearchEventsResponse]:
    """The rows as SearchEvents messages, in order: each non-empty, with at most SEARCH_MESSAGE_EVENTS
    events and at most SEARCH_MESSAGE_BYTES serialised, except that an event larger than that goes
    alone. Each event is filled in place in the message that carries it."""
    message = pb.SearchEventsResponse()
    events = message.events
    count = size = 0
    for row in rows:
        event = events.add()
        fill_event_proto_from_row(event, row)
        event_size = event.ByteSize() + _EVENT_FRAMING_BYTES
        if size + event_size > SEARCH_MESSAGE_BYTES and count:
            # This event would take the message past its byte bound: it starts the next one.
            moved = events.pop()
            yield message
            message = pb.SearchEventsResponse()
            events = message.events
            events.append(moved)
            count = size = 0
        count += 1
        size += event_size
        if count == SEARCH_MESSAGE_EVENTS:
            yield message
            message = pb.SearchEventsResponse()
            events = message.events
            count = size = 0
    if count:
        yield message


class AuditServicer(audit_service_pb2_grpc.AuditServiceServicer):
    def __init__(
        self,
        store: EventStore,
        sequencer: Sequencer,
        clock: Callable[[], datetime],
        verifications: VerificationRecords,
        tokens: PageTokenCodec,
        *,
        streams: StreamLimiter | None = None,
        append_bytes: ByteBudget | None = None,
    ) -> None:
        self._store = store
        self._sequencer = sequencer
        self._clock = clock
        self._verifications = verifications
        # Defaults for servicers built without a server (in-process tests): the configuration's.
        self._streams = streams or StreamLimiter(Config.max_streams, Config.stream_idle_seconds)
        self._append_bytes = append_bytes or ByteBudget(Config.max_append_bytes, "AppendEvents request")
        self._tokens = tokens

    def CreateEvent(
        self, request: pb.CreateEventRequest, context: grpc.ServicerContext
    ) -> event_pb2.AuditEvent:
        if not request.HasField("event"):
            raise InvalidArgumentError([FieldViolation("event", "got nothing, want an event")])
        event, sent = event_and_details_from_proto(request.event)
        (record,) = self._sequencer.append([event])
        # As in AppendEvents: the request's details Struct only for a record built from this event.
        return event_to_proto(record, sent if record.details is event.details else None)

    def AppendEvents(
        self, request: pb.AppendEventsRequest, context: grpc.ServicerContext
    ) -> pb.AppendEventsResponse:
        # Converting and writing a request takes several times its size in memory: bound the sum.
        with self._append_bytes.hold(request.ByteSize()):
            return self._append_events(request, context)

    def _append_events(
        self, request: pb.AppendEventsRequest, context: grpc.ServicerContext
    ) -> pb.AppendEventsResponse:
        count = len(request.events)
        if not 1 <= count <= MAX_BATCH_EVENTS:
            raise InvalidArgumentError(
                [FieldViolation("events", f"got {count} events, want 1 to {MAX_BATCH_EVENTS}")]
            )
        violations: list[FieldViolation] = []
        events = []
        sent_details = []
        for index, message in enumerate(request.events):
            try:
                event, sent = event_and_details_from_proto(message, prefix=f"events[{index}]")
            except InvalidArgumentError as err:
                violations.extend(err.violations)
                continue
            events.append(event)
            sent_details.append(sent)
        if violations:
            raise InvalidArgumentError(violations)
        if transcoded(context) and fitting_count(events) < count:
            raise InvalidArgumentError(
                [
                    FieldViolation(
                        "events",
                        f"got {count} events whose answer could exceed {_MIB_TEXT} of JSON, "
                        f"want an answer within the REST limit of {_MIB_TEXT}: send fewer events",
                    )
                ]
            )
        records = self._sequencer.append(events)
        response = pb.AppendEventsResponse()
        add = response.events.add
        for record, event, sent in zip(records, events, sent_details, strict=True):
            # A record built from this very event holds its details object; an idempotent retry's
            # record holds the original event's, which the request's Struct need not equal.
            fill_event_proto(add(), record, sent if record.details is event.details else None)
        return response

    def GetEvent(self, request: pb.GetEventRequest, context: grpc.ServicerContext) -> event_pb2.AuditEvent:
        event_id = validate_uuid("id", request.id)
        record = self._store.get(event_id)
        if record is None:
            raise NotFoundError(f"no audit event has id {event_id}")
        return event_to_proto(record)

    def ListEvents(
        self, request: pb.ListEventsRequest, context: grpc.ServicerContext
    ) -> pb.ListEventsResponse:
        violations: list[FieldViolation] = []
        try:
            event_filter = filter_from_proto(request)
        except InvalidArgumentError as err:
            violations.extend(err.violations)
            event_filter = None
        try:
            page_size = validate_page_size("page_size", request.page_size)
        except InvalidArgumentError as err:
            violations.extend(err.violations)
            page_size = 0
        order = request.order_by.strip().lower()
        if order not in _ORDERS:
            violations.append(
                FieldViolation(
                    "order_by", f"got {request.order_by!r}, want 'sequence desc' or 'sequence asc'"
                )
            )
        if request.page < 0 or request.page > MAX_PAGE:
            violations.append(
                FieldViolation(
                    "page", f"got {request.page}, want 1 to {MAX_PAGE} (use page_token to page deeper)"
                )
            )
        if request.page and request.page_token:
            violations.append(FieldViolation("page_token", "got both page and page_token, want one of them"))
        if violations or event_filter is None:
            raise InvalidArgumentError(violations)
        descending = _ORDERS.get(order, True)
        fingerprint = event_filter.fingerprint()
        page = 0
        if request.page_token:
            token = PageToken.decode(self._tokens, "page_token", request.page_token)
            if token.filter_fingerprint != fingerprint or token.descending != descending:
                raise InvalidArgumentError(
                    [
                        FieldViolation(
                            "page_token", "got a token for other filters or order, want the same as before"
                        )
                    ]
                )
            records = self._store.list_page(
                event_filter, descending=descending, limit=page_size + 1, after_sequence=token.last_sequence
            )
        else:
            page = request.page or 1
            records = self._store.list_page(
                event_filter, descending=descending, limit=page_size + 1, offset=(page - 1) * page_size
            )
        next_token = ""
        if len(records) > page_size:
            records = records[:page_size]
            next_token = PageToken(records[-1].sequence, descending, fingerprint).encode(self._tokens)
        if transcoded(context):
            fitting = fitting_count(records)
            if fitting < len(records):
                if page:  # a shorter page would shift every later page's offset
                    raise InvalidArgumentError(
                        [
                            FieldViolation(
                                "page_size",
                                f"got {page_size}, want at most {fitting} for this page: its answer "
                                f"could exceed the REST limit of {_MIB_TEXT} of JSON (or page by page_token)",
                            )
                        ]
                    )
                records = records[:fitting]
                next_token = PageToken(records[-1].sequence, descending, fingerprint).encode(self._tokens)
        return pb.ListEventsResponse(
            events=[event_to_proto(r) for r in records],
            next_page_token=next_token,
            page=page,
            page_size=page_size,
        )

    def SearchEvents(
        self, request: pb.SearchEventsRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.SearchEventsResponse]:
        event_filter = filter_from_proto(request)
        yield from self._streams.guard(context, "SearchEvents", self._search(event_filter, context))

    def _search(
        self, event_filter: EventFilter, context: grpc.ServicerContext
    ) -> Iterator[pb.SearchEventsResponse]:
        with closing(search_rows(self._store.pool, event_filter)) as batches:
            for message in search_messages(itertools.chain.from_iterable(batches)):
                if not context.is_active():
                    return  # the caller went away: closing the rows closes the cursor
                yield message

    def VerifyChain(
        self, request: pb.VerifyChainRequest, context: grpc.ServicerContext
    ) -> pb.VerifyChainResponse:
        has_range = request.HasField("start_sequence") or request.HasField("end_sequence")
        violations: list[FieldViolation] = []
        if request.verify_all and has_range:
            violations.append(
                FieldViolation("verify_all", "got verify_all with a range, want one or the other")
            )
        start = request.start_sequence if request.HasField("start_sequence") else 0
        end = request.end_sequence if request.HasField("end_sequence") else None
        if start < 0:
            violations.append(FieldViolation("start_sequence", f"got {start}, want at least 0"))
        if end is not None and end < start:
            violations.append(
                FieldViolation("end_sequence", f"got {end}, want at least start_sequence ({start})")
            )
        if violations:
            raise InvalidArgumentError(violations)
        verify_all = request.verify_all or not has_range
        head_now = self._store.head()
        if start > max(head_now.sequence, 0):
            raise InvalidArgumentError(
                [
                    FieldViolation(
                        "start_sequence", f"got {start}, want at most the head sequence {head_now.sequence}"
                    )
                ]
            )
        result, head, whole = self._verify(start, end, verify_all)
        verified_at = self._clock()
        self._verifications.record(result, whole=whole, verified_at=verified_at)
        response = pb.VerifyChainResponse(
            valid=result.valid,
            events_checked=result.events_checked,
            break_kind=BREAK_KINDS[result.break_kind],
            message=result.message,
            head_sequence=head.sequence,
            head_chain_hash=head.chain_hash.hex(),
        )
        if result.first_bad_sequence is not None:
            response.first_bad_sequence = result.first_bad_sequence
        if result.start_sequence is not None:
            response.start_sequence = result.start_sequence
        if result.end_sequence is not None:
            response.end_sequence = result.end_sequence
        response.verified_at.FromDatetime(verified_at)
        return response

    def _verify(
        self, start: int, end: int | None, verify_all: bool
    ) -> tuple[VerificationResult, LogHead, bool]:
        """The result, the head it was checked against, and whether it covered the whole log."""
        # A range that reaches the head checks the head too; the snapshot is read to the end then.
        with verification_snapshot(self._store.pool, start) as (head, prev, events):
            reaches_head = verify_all or end is None or end >= head.sequence
            whole = start == 0 and reaches_head
            if prev is None:
                # The event before the range is missing: the range cannot be anchored.
                result = VerificationResult(
                    valid=False,
                    events_checked=0,
                    start_sequence=None,
                    end_sequence=None,
                    first_bad_sequence=start - 1,
                    break_kind=BreakKind.GAP,
                    message=f"event {start - 1} (the range's anchor) is missing",
                )
                return result, head, whole
            result = verify_stored(
                events,
                start_sequence=start,
                prev_chain_hash=prev,
                end_sequence=None if reaches_head else end,
                head=head if reaches_head else None,
            )
            return result, head, whole

    def GetStats(self, request: pb.GetStatsRequest, context: grpc.ServicerContext) -> pb.GetStatsResponse:
        stats = self._store.stats(self._clock())
        response = pb.GetStatsResponse(
            total_events=stats.total_events,
            events_last_24h=stats.events_last_24h,
            unique_users_last_24h=stats.unique_users_last_24h,
            high_risk_events=stats.high_risk_events,
            head_sequence=stats.head.sequence,
            head_chain_hash=stats.head.chain_hash.hex(),
        )
        latest = self._verifications.latest()
        if latest.whole is not None:
            _fill_verification(response.last_verification, latest.whole)
        if latest.failure is not None:
            _fill_verification(response.last_failure, latest.failure)
        response.rejected_verification_records = latest.rejected
        return response


def _fill_verification(message: pb.LastVerification, record: VerificationRecord) -> None:
    message.verified_at.FromDatetime(record.verified_at)
    message.valid = record.valid
    message.verify_all = record.verify_all
    message.events_checked = record.events_checked
    message.break_kind = BREAK_KINDS[BreakKind(record.break_kind) if record.break_kind else None]
    message.message = record.message
    if record.first_bad_sequence is not None:
        message.first_bad_sequence = record.first_bad_sequence
    if record.start_sequence is not None:
        message.start_sequence = record.start_sequence
    if record.end_sequence is not None:
        message.end_sequence = record.end_sequence
