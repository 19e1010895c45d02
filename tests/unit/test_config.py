"""Configuration from the environment: defaults, the published forms, and one clear line per mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from auditlog.config import load_config
from auditlog.errors import ConfigError


def test_defaults_need_no_variables() -> None:
    config = load_config({})
    assert config.database_url is None
    assert (config.grpc_port, config.http_port, config.environment) == (50051, 8000, "development")
    assert config.data_dir == Path("auditlog-data")
    assert config.cors_origins == ()
    assert config.workers == 1


def test_published_forms_are_accepted() -> None:
    config = load_config(
        {
            "DATABASE_URL": "postgresql+asyncpg://user:password@localhost/audit_db",
            "ENVIRONMENT": "production",
            "CORS_ORIGINS": '["http://localhost:3000"]',
            "S3_BUCKET_NAME": "your-audit-exports-bucket",
            "REDIS_URL": "redis://localhost:6379",
        }
    )
    assert config.database_url == "postgresql://user:password@localhost/audit_db"
    assert config.cors_origins == ("http://localhost:3000",)
    assert config.s3_bucket_name == "your-audit-exports-bucket"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GRPC_PORT", "abc"),
        ("HTTP_PORT", "70000"),
        ("ENVIRONMENT", "prod"),
        ("CORS_ORIGINS", "http://localhost:3000"),
        ("CORS_ORIGINS", "[1, 2]"),
        ("DATABASE_URL", "mysql://localhost/audit"),
        ("AUDITLOG_WORKERS", "0"),
        ("AUDITLOG_WORKERS", "65"),
        ("AUDITLOG_WORKERS", "two"),
        ("AUDITLOG_METRICS", "yes"),
        ("AUDITLOG_LOG_FORMAT", "xml"),
    ],
)
def test_bad_value_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config({name: value})
    assert str(info.value).startswith(f"{name}: ")
    assert "\n" not in str(info.value)


def test_workers_count_is_read() -> None:
    assert load_config({"AUDITLOG_WORKERS": "4"}).workers == 4


def test_metrics_are_on_unless_turned_off() -> None:
    assert load_config({}).metrics
    assert not load_config({"AUDITLOG_METRICS": "off"}).metrics
    assert load_config({"AUDITLOG_METRICS": "ON"}).metrics


def test_log_format_and_trace_endpoint_are_read() -> None:
    assert load_config({}).log_format == "text" and load_config({}).otlp_endpoint is None
    config = load_config(
        {"AUDITLOG_LOG_FORMAT": "json", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}
    )
    assert config.log_format == "json" and config.otlp_endpoint == "http://collector:4317"
