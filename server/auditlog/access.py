"""Access-control configuration (AUDITLOG_AUTH, gRPC TLS, client-certificate roles, Envoy TLS), the
gRPC server's TLS credentials with rotation, and the first admin key. See SECURITY.md."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import psycopg

from auditlog.api.principal import Role
from auditlog.errors import ConfigError
from auditlog.storage.postgres import api_keys

_log = logging.getLogger(__name__)
AUTH_MODES = ("required", "off")
# The file in AUDITLOG_DATA_DIR that the first admin key is written to (mode 0600).
ADMIN_KEY_FILE = "admin-api-key"


@dataclass(frozen=True)
class AccessConfig:
    auth: str = "off"  # AUDITLOG_AUTH: required or off
    grpc_tls_cert_file: Path | None = None
    grpc_tls_key_file: Path | None = None
    # Set: clients must present a certificate this CA signed (mutual TLS).
    grpc_tls_client_ca_file: Path | None = None
    # AUDITLOG_TLS_ROLES: client-certificate identity (SAN URI or DNS name) -> role.
    tls_roles: tuple[tuple[str, Role], ...] = ()
    http_tls_cert_file: Path | None = None
    http_tls_key_file: Path | None = None

    @property
    def required(self) -> bool:
        return self.auth == "required"

    @property
    def grpc_tls(self) -> bool:
        return self.grpc_tls_cert_file is not None

    @property
    def mutual_tls(self) -> bool:
        return self.grpc_tls_client_ca_file is not None


def _file(env: Mapping[str, str], name: str) -> Path | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    path = Path(raw)
    if not path.is_file():
        raise ConfigError(f"{name}: got {raw!r}, want a readable file")
    return path


def _pair(env: Mapping[str, str], cert: str, key: str) -> tuple[Path | None, Path | None]:
    cert_file, key_file = _file(env, cert), _file(env, key)
    if (cert_file is None) != (key_file is None):
        missing = key if key_file is None else cert
        raise ConfigError(
            f"{missing}: got nothing, want it set together with {cert if missing == key else key}"
        )
    return cert_file, key_file


def _tls_roles(raw: str) -> tuple[tuple[str, Role], ...]:
    if not raw:
        return ()
    roles = [r.value for r in Role]
    try:
        parsed: Any = json.loads(raw)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict) or not all(
        isinstance(k, str) and k and v in roles for k, v in parsed.items()
    ):
        raise ConfigError(
            f"AUDITLOG_TLS_ROLES: want a JSON object from certificate identity to one of {', '.join(roles)},"
            ' e.g. {"spiffe://example.org/ingest": "writer"}'
        )
    return tuple((identity, Role(role)) for identity, role in parsed.items())


def load_access(env: Mapping[str, str], environment: str) -> AccessConfig:
    """AccessConfig from env; AUDITLOG_AUTH defaults to off in development, required elsewhere."""
    auth = env.get("AUDITLOG_AUTH", "").strip().lower() or (
        "off" if environment == "development" else "required"
    )
    if auth not in AUTH_MODES:
        raise ConfigError(f"AUDITLOG_AUTH: got {auth!r}, want required or off")
    cert, key = _pair(env, "GRPC_TLS_CERT_FILE", "GRPC_TLS_KEY_FILE")
    client_ca = _file(env, "GRPC_TLS_CLIENT_CA_FILE")
    if client_ca is not None and cert is None:
        raise ConfigError(
            "GRPC_TLS_CLIENT_CA_FILE: got a file without GRPC_TLS_CERT_FILE, want the server's"
            " certificate and key set too"
        )
    roles = _tls_roles(env.get("AUDITLOG_TLS_ROLES", "").strip())
    if roles and client_ca is None:
        raise ConfigError(
            "AUDITLOG_TLS_ROLES: got roles without GRPC_TLS_CLIENT_CA_FILE, want client certificates on"
        )
    http_cert, http_key = _pair(env, "HTTP_TLS_CERT_FILE", "HTTP_TLS_KEY_FILE")
    return AccessConfig(auth, cert, key, client_ca, roles, http_cert, http_key)


class _CertificateFiles:
    """Hands gRPC a new certificate configuration whenever one of the files changed (gRPC asks at
    each new TLS handshake), so certificates rotate without a restart."""

    def __init__(self, access: AccessConfig) -> None:
        files = (access.grpc_tls_cert_file, access.grpc_tls_key_file, access.grpc_tls_client_ca_file)
        self._paths = [path for path in files if path is not None]
        if access.grpc_tls_cert_file is None or access.grpc_tls_key_file is None:
            raise ConfigError("GRPC_TLS_CERT_FILE: got nothing, want it set with GRPC_TLS_KEY_FILE")
        self._seen = self._stamp()

    def _stamp(self) -> tuple[tuple[int, int], ...]:
        stats = [path.stat() for path in self._paths]
        return tuple((s.st_mtime_ns, s.st_size) for s in stats)

    def configuration(self) -> Any:
        cert, key, *ca = (path.read_bytes() for path in self._paths)
        return grpc.ssl_server_certificate_configuration(
            [(key, cert)], root_certificates=ca[0] if ca else None
        )

    def fetch(self) -> Any:
        try:
            stamp = self._stamp()
            if stamp == self._seen:
                return None
            configuration = self.configuration()
        except (OSError, ValueError) as err:
            # Half-written files during a rotation: keep serving with the certificates loaded.
            _log.warning("TLS files not reloaded: %s", err)
            return None
        self._seen = stamp
        _log.info("TLS certificates reloaded")
        return configuration


def server_credentials(access: AccessConfig) -> grpc.ServerCredentials:
    """TLS credentials for the gRPC port: client certificates required when a client CA is set."""
    files = _CertificateFiles(access)
    return grpc.dynamic_ssl_server_credentials(
        files.configuration(), files.fetch, require_client_authentication=access.mutual_tls
    )


def mint_first_admin_key(conn: psycopg.Connection[Any], data_dir: Path) -> Path | None:
    """With no valid key in the database: makes an admin key and writes it to
    data_dir/admin-api-key (mode 0600); returns that path, or None when keys exist."""
    if api_keys.count_valid(conn):
        return None
    name = "bootstrap-admin"
    if any(key.name == name for key in api_keys.list_keys(conn)):
        name = f"bootstrap-admin-{datetime.now(UTC):%Y%m%d%H%M%S}"
    _, secret = api_keys.create_key(conn, name, Role.ADMIN.value)
    path = data_dir / ADMIN_KEY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, f"{secret}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    partial.replace(path)
    return path.resolve()


def bootstrap_keys(url: str, access: AccessConfig, data_dir: Path) -> None:
    """With auth required, no client CA and no valid key: mints the first admin key (never logged)."""
    if not access.required or access.mutual_tls:
        return
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        path = mint_first_admin_key(conn, data_dir)
    if path is not None:
        _log.warning("auth required and no API key existed: the first admin key is in %s (mode 0600)", path)
