"""Building records: an event placed at a sequence, with its leaf and chain hashes."""

from __future__ import annotations

import uuid
from datetime import datetime

from auditlog.domain.canonical import canonical_bytes, chain_hash, leaf_hash
from auditlog.domain.event import EventRecord, NewEvent


def _leaf(
    event: NewEvent | EventRecord, *, event_id: uuid.UUID, sequence: int, recorded_at: datetime
) -> bytes:
    """The leaf hash of the client fields of event placed at sequence (both classes name them alike)."""
    return leaf_hash(
        canonical_bytes(
            id=event_id,
            sequence=sequence,
            event_type=event.event_type,
            user_id=event.user_id,
            action=event.action,
            resource_type=event.resource_type,
            resource_id=event.resource_id,
            details=event.details,
            risk_level=event.risk_level,
            ip_address=event.ip_address,
            user_agent=event.user_agent,
            session_id=event.session_id,
            request_id=event.request_id,
            occurred_at=event.occurred_at,
            recorded_at=recorded_at,
        )
    )


def build_record(
    event: NewEvent, *, sequence: int, recorded_at: datetime, prev: bytes, event_id: uuid.UUID
) -> EventRecord:
    """The record of event at sequence, with its leaf and chain hashes."""
    leaf = _leaf(event, event_id=event_id, sequence=sequence, recorded_at=recorded_at)
    return EventRecord(
        id=event_id,
        sequence=sequence,
        event_type=event.event_type,
        user_id=event.user_id,
        action=event.action,
        resource_type=event.resource_type,
        resource_id=event.resource_id,
        details=event.details,
        risk_level=event.risk_level,
        ip_address=event.ip_address,
        user_agent=event.user_agent,
        session_id=event.session_id,
        request_id=event.request_id,
        occurred_at=event.occurred_at,
        recorded_at=recorded_at,
        leaf_hash=leaf,
        prev_hash=prev,
        chain_hash=chain_hash(prev, leaf),
    )


def record_leaf_hash(record: EventRecord) -> bytes:
    """The leaf hash recomputed from the record's columns."""
    return _leaf(record, event_id=record.id, sequence=record.sequence, recorded_at=record.recorded_at)
