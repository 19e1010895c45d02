"""Building records: an event placed at a sequence, with its leaf and chain hashes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from auditlog.domain.canonical import (
    canonical_bytes,
    canonical_bytes_from_segments,
    canonical_segments,
    chain_hash,
    format_timestamp,
    leaf_hash,
)
from auditlog.domain.event import EventRecord, NewEvent, assemble
from auditlog.domain.schema import CANONICAL_VERSION, CLIENT_NAMES


def _leaf(
    event: NewEvent | EventRecord,
    *,
    event_id: uuid.UUID,
    sequence: int,
    recorded_at: datetime,
    recorded_by: str,
    version: int = CANONICAL_VERSION,
) -> bytes:
    """The leaf hash of the client fields of event placed at sequence (both classes name them alike),
    by canonical form version (version 1 does not hash recorded_by)."""
    values = {name: getattr(event, name) for name in CLIENT_NAMES}
    if version >= 2:
        values["recorded_by"] = recorded_by
    return leaf_hash(canonical_bytes(**values, id=event_id, sequence=sequence, recorded_at=recorded_at))


def build_record(
    event: NewEvent,
    *,
    sequence: int,
    recorded_at: datetime,
    prev: bytes,
    event_id: uuid.UUID,
    recorded_by: str = "",
) -> EventRecord:
    """The record of event at sequence written by recorded_by, with its leaf and chain hashes."""
    leaf = _leaf(
        event, event_id=event_id, sequence=sequence, recorded_at=recorded_at, recorded_by=recorded_by
    )
    return _record(
        event,
        event_id=event_id,
        sequence=sequence,
        recorded_at=recorded_at,
        recorded_by=recorded_by,
        leaf=leaf,
        prev=prev,
    )


def _record(
    event: NewEvent,
    *,
    event_id: uuid.UUID,
    sequence: int,
    recorded_at: datetime,
    recorded_by: str,
    leaf: bytes,
    prev: bytes,
) -> EventRecord:
    """The record of event placed at sequence whose leaf hash is leaf, chained after prev."""
    # The event's attribute dict holds exactly its fields (and details_json): the record's are
    # those plus the ones its position gives it.
    values = event.__dict__.copy()
    values["id"] = event_id
    values["sequence"] = sequence
    values["recorded_at"] = recorded_at
    values["recorded_by"] = recorded_by
    values["leaf_hash"] = leaf
    values["prev_hash"] = prev
    values["chain_hash"] = chain_hash(prev, leaf)
    values["canonical_version"] = CANONICAL_VERSION
    return assemble(EventRecord, values)


def record_leaf_hash(record: EventRecord) -> bytes:
    """The leaf hash recomputed from the record's columns, by the form its canonical_version names."""
    return _leaf(
        record,
        event_id=record.id,
        sequence=record.sequence,
        recorded_at=record.recorded_at,
        recorded_by=record.recorded_by,
        version=record.canonical_version,
    )


@dataclass(frozen=True, slots=True)
class PreparedEvent:
    """An event with an id and the position-free parts of its canonical bytes, made before it is
    sequenced (by the caller's thread), so that placing it costs the sequencer little."""

    event: NewEvent
    id: uuid.UUID
    segments: tuple[bytes, bytes, bytes, bytes] | None  # canonical_segments; None: canonical_bytes decides
    recorded_by: str = ""  # the principal writing it, passed along (the sequencer runs on its own thread)


def prepare_event(event: NewEvent, event_id: uuid.UUID, recorded_by: str = "") -> PreparedEvent:
    return PreparedEvent(event, event_id, canonical_segments(event, recorded_by), recorded_by)


class RecordBuilder:
    """Builds the records of one batch, all recorded at the same moment: build_record's results,
    from prepared events, with the moment formatted once."""

    def __init__(self, recorded_at: datetime) -> None:
        self.recorded_at = recorded_at
        self._recorded_at_text = format_timestamp(recorded_at)

    def build(self, prepared: PreparedEvent, *, sequence: int, prev: bytes) -> EventRecord:
        event, segments = prepared.event, prepared.segments
        if segments is None:
            return build_record(
                event,
                sequence=sequence,
                recorded_at=self.recorded_at,
                prev=prev,
                event_id=prepared.id,
                recorded_by=prepared.recorded_by,
            )
        leaf = leaf_hash(
            canonical_bytes_from_segments(segments, prepared.id, self._recorded_at_text, sequence)
        )
        return _record(
            event,
            event_id=prepared.id,
            sequence=sequence,
            recorded_at=self.recorded_at,
            recorded_by=prepared.recorded_by,
            leaf=leaf,
            prev=prev,
        )
