"""The record of verifications, signed by the verifier so that GetStats reports only its results.

The service role may INSERT into `verifications` (the verifier writes there through it), so a row
proves nothing by being there. Each row the verifier writes carries an HMAC-SHA256 of its columns
under a key kept outside the database (a file in the data directory); GetStats reports the newest
rows whose signature checks and counts the others it met (docs/decisions.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from auditlog import metrics
from auditlog.domain.canonical import format_timestamp
from auditlog.domain.verification import VerificationResult
from auditlog.storage.api import LatestVerifications, VerificationRecord

KEY_FILE = "verification.key"
KEY_BYTES = 32
# Rows read at most per question (the newest whole-log result, the newest failure): rows that fail
# the check are skipped, and a flood of them must not make GetStats read the whole table.
MAX_ROWS_READ = 1_000
_PAGE = 20
_DOMAIN = "auditlog.verification.v1"
_COLUMNS = (
    "verified_at, verify_all, valid, events_checked, start_sequence, end_sequence,"
    " first_bad_sequence, break_kind, message"
)


def _mac(record: VerificationRecord, key: bytes) -> bytes:
    """HMAC-SHA256 over the record's columns in a fixed JSON form (the timestamp as the log writes it)."""
    fields: dict[str, Any] = asdict(record)
    fields["verified_at"] = format_timestamp(record.verified_at)
    fields["domain"] = _DOMAIN
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def load_or_create_key(data_dir: Path) -> bytes:
    """The signing key in data_dir/verification.key, made (mode 0600) on first use. Several
    processes may start together: the key is written under another name and linked into place,
    so every one of them reads the same key."""
    path = data_dir / KEY_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        temporary = data_dir / f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(secrets.token_bytes(KEY_BYTES))
            with contextlib.suppress(FileExistsError):  # another process made it first
                os.link(temporary, path)
        finally:
            temporary.unlink()
    key = path.read_bytes()
    if len(key) != KEY_BYTES:
        raise OSError(f"{KEY_FILE} in the data directory is not a {KEY_BYTES}-byte key")
    return key


class VerificationRecords:
    """Writes signed verification results and reads the newest genuine ones."""

    def __init__(self, pool: ConnectionPool, key: bytes) -> None:
        self._pool = pool
        self._key = key

    def record(self, result: VerificationResult, *, whole: bool, verified_at: datetime) -> None:
        row = VerificationRecord.of(result, whole=whole, verified_at=verified_at)
        with self._pool.connection() as conn:
            conn.execute(
                f"INSERT INTO verifications ({_COLUMNS}, mac) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (*asdict(row).values(), _mac(row, self._key)),
            )
        metrics.verification_recorded(result.valid, whole, verified_at.timestamp())

    def latest(self) -> LatestVerifications:
        """The newest signed whole-log result and the newest signed failure, with the count of rows
        met on the way whose signature does not check."""
        rejected: set[int] = set()
        with self._pool.connection() as conn, conn.transaction():
            whole = self._newest(conn, "verify_all", rejected)
            failure = self._newest(conn, "NOT valid", rejected)
        return LatestVerifications(whole, failure, len(rejected))

    def _newest(
        self, conn: psycopg.Connection[Any], condition: str, rejected: set[int]
    ) -> VerificationRecord | None:
        for row_id, record, mac in self._rows(conn, condition):
            if hmac.compare_digest(_mac(record, self._key), mac):
                return record
            rejected.add(row_id)
        return None

    @staticmethod
    def _rows(
        conn: psycopg.Connection[Any], condition: str
    ) -> Iterator[tuple[int, VerificationRecord, bytes]]:
        # Rows from before signing (mac NULL) are never reported; newest first, a page at a time.
        query = (
            f"SELECT id, {_COLUMNS}, mac FROM verifications WHERE {condition} AND mac IS NOT NULL"
            " AND (%s::timestamptz IS NULL OR (verified_at, id) < (%s, %s))"
            " ORDER BY verified_at DESC, id DESC LIMIT %s"
        )
        after: tuple[datetime | None, int] = (None, 0)
        read = 0
        while read < MAX_ROWS_READ:
            rows = conn.execute(query, (after[0], after[0], after[1], _PAGE)).fetchall()
            for row in rows:
                yield row[0], VerificationRecord(*row[1:10]), bytes(row[10])
            read += len(rows)
            if len(rows) < _PAGE:
                return
            after = (rows[-1][1], rows[-1][0])
