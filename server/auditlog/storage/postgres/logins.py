"""Who connects: every session of the service logs in as the runtime login; only migrations use the
owner. A runtime login that is a superuser or owns the events table could `RESET ROLE` and drop the
WORM triggers, so it is refused in production (and whenever a separate owner URL is given).

- Embedded PostgreSQL: the owner is its `postgres` superuser; the runtime login is `auditlog_app`,
  a member of `auditlog_service` created on first start with a random password kept in
  AUDITLOG_DATA_DIR/service-login.json (mode 0600) and read from there afterwards.
- External: DATABASE_URL is the runtime login, AUDITLOG_MIGRATION_DATABASE_URL the owner; without
  it DATABASE_URL is both (the single-login shape, refused in production).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from auditlog.config import Config
from auditlog.errors import ConfigError
from auditlog.redaction import register_secret
from auditlog.storage.postgres.database import SERVICE_ROLE, required_row, start_embedded
from auditlog.storage.postgres.migrations import apply_migrations

EMBEDDED_LOGIN = "auditlog_app"
CREDENTIALS_FILE = "service-login.json"
_log = logging.getLogger(__name__)


def describe_url(url: str) -> str:
    """scheme://host:port/dbname of a URL or conninfo: what may be logged (no user, no password)."""
    try:
        info = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "postgresql://?"
    host = str(info.get("host") or "localhost")
    port = info.get("port")
    return f"postgresql://{host}{f':{port}' if port else ''}/{info.get('dbname') or ''}"


def prepare_database(config: Config, *, runtime_url: str | None = None, owner_url: str | None = None) -> str:
    """Applies migrations as the owner, makes sure the runtime login may act as auditlog_service and
    holds no more, and returns the runtime login's URL (for the pool and every other connection).

    runtime_url/owner_url override the configuration (tests, benchmarks); owner_url defaults to
    runtime_url, the single-login shape."""
    if runtime_url is not None:
        separate, owner = owner_url is not None, owner_url or runtime_url
        apply_migrations(owner)
        runtime = runtime_url
    elif config.database_url is None:
        separate, owner = True, start_embedded(config.data_dir)
        apply_migrations(owner)
        runtime = embedded_login(owner, config.data_dir)
    else:
        separate = config.migration_database_url is not None
        owner = config.migration_database_url or config.database_url
        apply_migrations(owner)
        runtime = config.database_url
    check_runtime_login(runtime, owner, separate=separate, environment=config.environment)
    return runtime


def embedded_login(owner_url: str, data_dir: Path) -> str:
    """The URL of the embedded server's runtime login, created (or its password reset, when the
    credentials file is missing or unreadable) as the owner."""
    path = data_dir / CREDENTIALS_FILE
    password = _read_password(path)
    if password is None:
        password = secrets.token_urlsafe(32)
        _write_private(path, json.dumps({"user": EMBEDDED_LOGIN, "password": password}) + "\n")
    register_secret(password)
    attributes = sql.SQL("LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD {}")
    with psycopg.connect(owner_url, autocommit=True, connect_timeout=5) as conn:
        role = sql.Identifier(EMBEDDED_LOGIN)
        secret = sql.Literal(password)
        try:
            conn.execute(sql.SQL("CREATE ROLE {} ").format(role) + attributes.format(secret))
        except psycopg.errors.DuplicateObject:
            conn.execute(sql.SQL("ALTER ROLE {} ").format(role) + attributes.format(secret))
        conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(SERVICE_ROLE), role))
    return make_conninfo(owner_url, user=EMBEDDED_LOGIN, password=password)


def _read_password(path: Path) -> str | None:
    try:
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
        stored: Any = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if isinstance(stored, dict) and stored.get("user") == EMBEDDED_LOGIN:
        password = stored.get("password")
        if isinstance(password, str) and password:
            return password
    return None


def _write_private(path: Path, text: str) -> None:
    """Writes text to path readable by its owner only, replacing it whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # a leftover partial file may have had a wider mode
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    partial.replace(path)


def check_runtime_login(runtime_url: str, owner_url: str, *, separate: bool, environment: str) -> None:
    """Raises ConfigError (naming DATABASE_URL) when the runtime login is a superuser or owns the
    events table (directly or through a role it belongs to) and it must not: in production, or when
    a separate owner logs in for migrations. With a separate owner, grants the runtime login
    membership in auditlog_service if it lacks it."""
    with psycopg.connect(runtime_url, autocommit=True, connect_timeout=5) as conn:
        row = conn.execute(
            "SELECT session_user::text, r.rolsuper, pg_has_role(session_user, c.relowner, 'MEMBER'),"
            " pg_has_role(session_user, %s, 'MEMBER')"
            " FROM pg_roles r, pg_class c"
            " WHERE r.rolname = session_user AND c.oid = 'audit_events'::regclass",
            (SERVICE_ROLE,),
        ).fetchone()
    login, superuser, owner, member = required_row(row, "the runtime login's role")
    if superuser or owner:
        what = "a superuser" if superuser else "an owner of audit_events"
        if separate or environment == "production":
            raise ConfigError(
                f"DATABASE_URL: got role {login!r}, {what}; want a login role that is neither"
                " superuser nor owner of audit_events"
                + ("" if separate else ", with the owner in AUDITLOG_MIGRATION_DATABASE_URL")
            )
        _log.warning(
            "the service logs in as role %r, %s, which can undo SET ROLE; set"
            " AUDITLOG_MIGRATION_DATABASE_URL to the owner and DATABASE_URL to a login role"
            " (refused in production)",
            login,
            what,
        )
        return
    if not member:
        try:
            with psycopg.connect(owner_url, autocommit=True, connect_timeout=5) as conn:
                conn.execute(
                    sql.SQL("GRANT {} TO {}").format(sql.Identifier(SERVICE_ROLE), sql.Identifier(login))
                )
        except psycopg.errors.InsufficientPrivilege:
            raise ConfigError(
                f"DATABASE_URL: got role {login!r}, not a member of {SERVICE_ROLE}, and the owner may not"
                f" grant it; want GRANT {SERVICE_ROLE} TO {login} run once by an administrator"
            ) from None
    _log.info("service sessions log in as role %r on %s", login, describe_url(runtime_url))
