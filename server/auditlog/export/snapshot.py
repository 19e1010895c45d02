"""What a job will export, fixed before it writes a row: count, sequence range and the last chain
hash of the matching events at or below the job's max_sequence. The log is append-only, so these
never change, and the file's metadata can precede its rows."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql
from psycopg_pool import ConnectionPool

from auditlog.domain.filters import EventFilter
from auditlog.storage.database import required_row
from auditlog.storage.events import filter_clause


@dataclass(frozen=True)
class SnapshotSummary:
    row_count: int
    first_sequence: int | None
    last_sequence: int | None
    last_chain_hash: bytes | None


def summarise(pool: ConnectionPool, event_filter: EventFilter, max_sequence: int) -> SnapshotSummary:
    conditions, params = filter_clause(event_filter)
    conditions.append(sql.SQL("sequence <= %s"))
    params.append(max_sequence)
    query = sql.SQL("SELECT count(*), min(sequence), max(sequence) FROM audit_events WHERE ") + sql.SQL(
        " AND "
    ).join(conditions)
    with pool.connection() as conn:
        row = required_row(conn.execute(query, params).fetchone(), "the count of matching events")
        count, first, last = int(row[0]), row[1], row[2]
        last_hash: bytes | None = None
        if last is not None:
            found = required_row(
                conn.execute("SELECT chain_hash FROM audit_events WHERE sequence = %s", (last,)).fetchone(),
                f"the event at sequence {last}",
            )
            last_hash = bytes(found[0])
    return SnapshotSummary(count, first, last, last_hash)
