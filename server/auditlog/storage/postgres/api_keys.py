"""API keys in the database (migration 0008): SHA-256 digests with a name, a role and dates.

Functions take a connection, so the CLI (as the owner) and the service (as auditlog_service) share
them. A key is `al_` and 52 base32 characters: 32 random bytes.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from auditlog.api.principal import Role
from auditlog.errors import FieldViolation, InvalidArgumentError, NotFoundError
from auditlog.storage.postgres.database import ServicePool, required_row

KEY_PREFIX = "al_"
_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
_COLUMNS = "name, role, created_at, last_used_at, revoked_at"


@dataclass(frozen=True)
class ApiKey:
    name: str
    role: Role
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def new_secret() -> str:
    """A fresh key: 256 random bits."""
    return KEY_PREFIX + base64.b32encode(secrets.token_bytes(32)).decode().rstrip("=").lower()


def digest_of(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


def validate_key_spec(name: str, role: str) -> Role:
    """The role named, or InvalidArgumentError naming every bad field."""
    violations = []
    if not _NAME.fullmatch(name):
        violations.append(
            FieldViolation("name", f"got {name[:80]!r}, want 1 to 64 letters, digits, '.', '_' or '-'")
        )
    roles = [r.value for r in Role]
    if role not in roles:
        violations.append(FieldViolation("role", f"got {role[:80]!r}, want one of {', '.join(roles)}"))
    if violations:
        raise InvalidArgumentError(violations)
    return Role(role)


def name_taken(name: str) -> InvalidArgumentError:
    return InvalidArgumentError(
        [FieldViolation("name", f"got {name!r}, which an existing key has; want a new name")]
    )


def no_key_named(name: str) -> NotFoundError:
    return NotFoundError(f"no API key named {name[:80]!r}")


def _key(row: Iterable[Any]) -> ApiKey:
    name, role, created_at, last_used_at, revoked_at = row
    return ApiKey(name, Role(role), created_at, last_used_at, revoked_at)


def create_key(conn: psycopg.Connection[Any], name: str, role: str) -> tuple[ApiKey, str]:
    """A new key named name with role; returns it and its secret (the only time the secret exists
    outside the caller). A name in use is InvalidArgumentError."""
    checked = validate_key_spec(name, role)
    secret = new_secret()
    try:
        with conn.transaction():
            row = conn.execute(
                f"INSERT INTO api_keys (name, digest, role) VALUES (%s, %s, %s) RETURNING {_COLUMNS}",
                (name, digest_of(secret), checked.value),
            ).fetchone()
    except psycopg.errors.UniqueViolation:
        raise name_taken(name) from None
    return _key(required_row(row, "the API key just inserted")), secret


def list_keys(conn: psycopg.Connection[Any]) -> list[ApiKey]:
    rows = conn.execute(f"SELECT {_COLUMNS} FROM api_keys ORDER BY created_at DESC, name").fetchall()
    return [_key(row) for row in rows]


def revoke_key(conn: psycopg.Connection[Any], name: str) -> ApiKey:
    """Revokes the key named name (a revoked one stays as it was); NotFoundError if none."""
    with conn.transaction():
        row = conn.execute(
            "UPDATE api_keys SET revoked_at = now() WHERE name = %s AND revoked_at IS NULL"
            f" RETURNING {_COLUMNS}",
            (name,),
        ).fetchone()
        if row is None:
            row = conn.execute(f"SELECT {_COLUMNS} FROM api_keys WHERE name = %s", (name,)).fetchone()
    if row is None:
        raise no_key_named(name)
    return _key(row)


def valid_digests(conn: psycopg.Connection[Any]) -> dict[bytes, tuple[str, Role]]:
    """digest -> (name, role) of every key not revoked."""
    rows = conn.execute("SELECT digest, name, role FROM api_keys WHERE revoked_at IS NULL").fetchall()
    return {bytes(digest): (name, Role(role)) for digest, name, role in rows}


def count_valid(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT count(*) FROM api_keys WHERE revoked_at IS NULL").fetchone()
    return int(row[0]) if row else 0


def touch(conn: psycopg.Connection[Any], names: Iterable[str], when: datetime) -> None:
    """Records that the keys named were used at when (never moving last_used_at back)."""
    with conn.transaction():
        conn.execute(
            "UPDATE api_keys SET last_used_at = %s WHERE name = ANY(%s)"
            " AND (last_used_at IS NULL OR last_used_at < %s)",
            (when, list(names), when),
        )


class KeyTable:
    """The service's KeyStore (storage.api): each call on its own pooled connection."""

    def __init__(self, pool: ServicePool) -> None:
        self._pool = pool

    def create_key(self, name: str, role: str) -> tuple[ApiKey, str]:
        with self._pool.connection() as conn:
            return create_key(conn, name, role)

    def list_keys(self) -> list[ApiKey]:
        with self._pool.connection() as conn:
            return list_keys(conn)

    def revoke_key(self, name: str) -> ApiKey:
        with self._pool.connection() as conn:
            return revoke_key(conn, name)
