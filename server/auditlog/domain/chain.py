"""Building records: an event placed at a sequence, with its leaf and chain hashes."""

from __future__ import annotations

import uuid
from datetime import datetime

from auditlog.domain.canonical import canonical_bytes, chain_hash, leaf_hash
from auditlog.domain.event import EventRecord, NewEvent


def build_record(
    event: NewEvent, *, sequence: int, recorded_at: datetime, prev: bytes, event_id: uuid.UUID
) -> EventRecord:
    """The record of event at sequence, with its leaf and chain hashes."""
    leaf = leaf_hash(
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
    return leaf_hash(
        canonical_bytes(
            id=record.id,
            sequence=record.sequence,
            event_type=record.event_type,
            user_id=record.user_id,
            action=record.action,
            resource_type=record.resource_type,
            resource_id=record.resource_id,
            details=record.details,
            risk_level=record.risk_level,
            ip_address=record.ip_address,
            user_agent=record.user_agent,
            session_id=record.session_id,
            request_id=record.request_id,
            occurred_at=record.occurred_at,
            recorded_at=record.recorded_at,
        )
    )
