"""audit.v1.AuditService: validation and conversion at the edge, the work in sequencer and store."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from datetime import datetime

import grpc

from audit.v1 import audit_service_pb2 as pb
from audit.v1 import audit_service_pb2_grpc, event_pb2
from auditlog.api.caller import principal_name
from auditlog.api.convert import (
    MESSAGE_BYTES,
    MESSAGE_EVENTS,
    event_and_details_from_proto,
    event_to_proto,
    fill_event_proto,
    filter_from_proto,
    row_messages,
)
from auditlog.api.limits import ByteBudget, StreamLimiter
from auditlog.api.read_audit import ReadAuditor
from auditlog.api.rest_limits import MAX_REST_ANSWER_BYTES, fitting_count, transcoded
from auditlog.api.tail import TailHub, tail_messages
from auditlog.config import Config
from auditlog.domain.anchored import SignedCheckpoint
from auditlog.domain.filters import FILTER_FIELDS, EventFilter, PageToken
from auditlog.domain.page_token import PageTokenCodec
from auditlog.domain.requests import validate_batch_size, validate_list_events, validate_verify_range
from auditlog.domain.validation import validate_uuid
from auditlog.domain.verification import BreakKind
from auditlog.errors import FieldViolation, InvalidArgumentError, NotFoundError
from auditlog.sequencer import Sequencer
from auditlog.storage.api import LogReader, PageQuery, SearchRow, VerificationLog, VerificationRecord
from auditlog.verifier import verify_chain

BREAK_KINDS = {
    None: pb.BREAK_KIND_UNSPECIFIED,
    BreakKind.LEAF_HASH: pb.BREAK_KIND_LEAF_HASH,
    BreakKind.CHAIN_HASH: pb.BREAK_KIND_CHAIN_HASH,
    BreakKind.LINK: pb.BREAK_KIND_LINK,
    BreakKind.GAP: pb.BREAK_KIND_GAP,
    BreakKind.HEAD: pb.BREAK_KIND_HEAD,
    BreakKind.CHECKPOINT: pb.BREAK_KIND_CHECKPOINT,
}
_MIB_TEXT = f"{MAX_REST_ANSWER_BYTES >> 20} MiB"


# Bounds of one SearchEvents message (documented on SearchEventsResponse).
SEARCH_MESSAGE_EVENTS = MESSAGE_EVENTS
SEARCH_MESSAGE_BYTES = MESSAGE_BYTES


def search_messages(rows: Iterable[SearchRow]) -> Iterator[pb.SearchEventsResponse]:
    """The rows as SearchEvents messages (see api.convert.row_messages)."""
    return row_messages(rows, pb.SearchEventsResponse)


class AuditServicer(audit_service_pb2_grpc.AuditServiceServicer):
    def __init__(
        self,
        store: LogReader,
        sequencer: Sequencer,
        clock: Callable[[], datetime],
        verifications: VerificationLog,
        tokens: PageTokenCodec,
        *,
        streams: StreamLimiter | None = None,
        append_bytes: ByteBudget | None = None,
        tails: TailHub | None = None,
        tail_streams: StreamLimiter | None = None,
        reads: ReadAuditor | None = None,
        anchored: Callable[[], list[SignedCheckpoint]] | None = None,
    ) -> None:
        self._store = store
        # The checkpoints anchored outside the database, which VerifyChain checks the log against.
        self._anchored = anchored
        self._sequencer = sequencer
        self._clock = clock
        self._verifications = verifications
        # Defaults for servicers built without a server (in-process tests): the configuration's.
        self._streams = streams or StreamLimiter(Config.max_streams, Config.stream_idle_seconds)
        self._append_bytes = append_bytes or ByteBudget(Config.max_append_bytes, "AppendEvents request")
        self._tokens = tokens
        self._tails = tails or TailHub()
        self._tail_streams = tail_streams or StreamLimiter(Config.max_tails, Config.stream_idle_seconds)
        self._reads = reads or ReadAuditor(None, enabled=False)

    def CreateEvent(
        self, request: pb.CreateEventRequest, context: grpc.ServicerContext
    ) -> event_pb2.AuditEvent:
        if not request.HasField("event"):
            raise InvalidArgumentError([FieldViolation("event", "got nothing, want an event")])
        event, sent = event_and_details_from_proto(request.event)
        (record,) = self._sequencer.append([event], recorded_by=principal_name())
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
        validate_batch_size(count)
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
        records = self._sequencer.append(events, recorded_by=principal_name())
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
        self._reads.record("GetEvent", 0 if record is None else 1, id=str(event_id))
        if record is None:
            raise NotFoundError(f"no audit event has id {event_id}")
        return event_to_proto(record)

    def ListEvents(
        self, request: pb.ListEventsRequest, context: grpc.ServicerContext
    ) -> pb.ListEventsResponse:
        query = validate_list_events(
            {name: getattr(request, name) for name in FILTER_FIELDS},
            page_size=request.page_size,
            order_by=request.order_by,
            page=request.page,
            has_page_token=bool(request.page_token),
        )
        event_filter, page_size, descending = query.event_filter, query.page_size, query.descending
        fingerprint = event_filter.fingerprint()
        page = query.page
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
            position = PageQuery(descending, page_size + 1, after_sequence=token.last_sequence)
        else:
            position = PageQuery(descending, page_size + 1, offset=(page - 1) * page_size)
        records = self._store.list_page(event_filter, position)
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
        self._reads.record("ListEvents", len(records), event_filter, page=page, page_size=page_size)
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
        rows = 0
        try:
            with closing(self._store.search_rows(event_filter)) as batches:
                for message in search_messages(itertools.chain.from_iterable(batches)):
                    if not context.is_active():
                        return  # the caller went away: closing the rows closes the cursor
                    yield message
                    rows += len(message.events)
        finally:
            self._reads.record("SearchEvents", rows, event_filter)

    def TailEvents(
        self, request: pb.TailEventsRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.TailEventsResponse]:
        event_filter = filter_from_proto(request)
        start = request.from_sequence if request.HasField("from_sequence") else None
        if start is not None and start < 0:
            raise InvalidArgumentError(
                [FieldViolation("from_sequence", f"got {start}, want 0 or more (or unset: from now)")]
            )
        end = request.to_sequence if request.HasField("to_sequence") else None
        messages = tail_messages(self._store, self._tails, event_filter, start, end, context)
        yield from self._tail_streams.guard(context, "TailEvents", messages)

    def VerifyChain(
        self, request: pb.VerifyChainRequest, context: grpc.ServicerContext
    ) -> pb.VerifyChainResponse:
        wanted = validate_verify_range(
            start=request.start_sequence if request.HasField("start_sequence") else None,
            end=request.end_sequence if request.HasField("end_sequence") else None,
            verify_all=request.verify_all,
        )
        done = verify_chain(self._store, self._verifications, self._clock, wanted, self._anchored)
        result, head, verified_at = done.result, done.head, done.verified_at
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
