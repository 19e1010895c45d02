"""Export settings from the environment."""

from __future__ import annotations

import pytest

from auditlog.config import load_config
from auditlog.errors import ConfigError


def test_download_urls_default_to_the_local_gateway_port() -> None:
    config = load_config({"HTTP_PORT": "8080"})
    assert config.public_base_url == "http://localhost:8080"
    assert (config.export_workers, config.export_url_expiry) == (2, 3600)


def test_export_settings_are_read_and_checked() -> None:
    config = load_config(
        {
            "PUBLIC_BASE_URL": "https://audit.example.com/",
            "EXPORT_WORKERS": "4",
            "EXPORT_URL_EXPIRY_SECONDS": "600",
        }
    )
    assert (config.public_base_url, config.export_workers, config.export_url_expiry) == (
        "https://audit.example.com",
        4,
        600,
    )
    for env, name in (
        ({"PUBLIC_BASE_URL": "audit.example.com"}, "PUBLIC_BASE_URL"),
        ({"EXPORT_WORKERS": "0"}, "EXPORT_WORKERS"),
        ({"EXPORT_URL_EXPIRY_SECONDS": "999999999"}, "EXPORT_URL_EXPIRY_SECONDS"),
    ):
        with pytest.raises(ConfigError, match=name):
            load_config(env)
