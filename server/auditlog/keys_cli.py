"""`auditlog keys create|list|revoke`: API keys managed on the database directly, as its owner
(DATABASE_URL's owner login, AUDITLOG_MIGRATION_DATABASE_URL when set, or the embedded server's),
so the first keys can be made before any server runs. Migrations are applied first."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import psycopg

from auditlog.config import load_config
from auditlog.errors import AuditLogError, ConfigError
from auditlog.redaction import redact, register
from auditlog.storage.postgres import api_keys
from auditlog.storage.postgres.database import start_embedded
from auditlog.storage.postgres.logins import describe_url
from auditlog.storage.postgres.migrations import apply_migrations


def add_parser(commands: Any) -> None:
    keys = commands.add_parser("keys", help="create, list or revoke API keys (on the database directly)")
    actions = keys.add_subparsers(dest="keys_command", required=True)
    create = actions.add_parser("create", help="make a key; prints its secret once")
    create.add_argument("--name", required=True, help="unique: 1 to 64 letters, digits, '.', '_' or '-'")
    create.add_argument("--role", required=True, help="writer, reader, auditor or admin")
    actions.add_parser("list", help="every key with its role and dates (never a secret)")
    revoke = actions.add_parser("revoke", help="revoke a key by name (within 1 s in every server)")
    revoke.add_argument("name")


def _owner_url() -> str:
    config = load_config()
    if config.database_url is None:
        return start_embedded(config.data_dir)
    for url in (config.database_url, config.migration_database_url):
        if url:
            register(url)
    return config.migration_database_url or config.database_url


def _say(message: str) -> None:
    print(f"auditlog: {message}", file=sys.stderr)  # noqa: T201


def _when(value: Any) -> str:
    return "-" if value is None else value.isoformat(timespec="seconds")


def run(args: argparse.Namespace) -> int:
    try:
        url = _owner_url()
        apply_migrations(url)
        with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
            if args.keys_command == "create":
                key, secret = api_keys.create_key(conn, args.name, args.role)
                # The secret goes to stdout alone (for scripts); everything else to stderr.
                _say(f"key {key.name!r} (role {key.role.value}) created; its secret, shown this once:")
                print(secret)  # noqa: T201
            elif args.keys_command == "list":
                print("name\trole\tcreated_at\tlast_used_at\trevoked_at")  # noqa: T201
                for key in api_keys.list_keys(conn):
                    dates = "\t".join(_when(v) for v in (key.created_at, key.last_used_at, key.revoked_at))
                    print(f"{key.name}\t{key.role.value}\t{dates}")  # noqa: T201
            else:
                key = api_keys.revoke_key(conn, args.name)
                _say(f"key {key.name!r} revoked at {_when(key.revoked_at)}")
    except ConfigError as err:
        _say(f"configuration error: {err}")
        return 2
    except AuditLogError as err:
        _say(str(err))
        return 1
    except psycopg.Error as err:
        where = describe_url(url) if "url" in locals() else "the database"
        _say(f"cannot use {where}: {redact(str(err).splitlines()[0] if str(err) else type(err).__name__)}")
        return 1
    return 0
