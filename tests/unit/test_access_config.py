"""AUDITLOG_AUTH defaults by ENVIRONMENT, and TLS settings that cannot work fail at start naming
the variable."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from auditlog.api.principal import Role
from auditlog.config import load_config
from auditlog.errors import ConfigError
from auditlog.gateway import GatewaySettings, render_config


@pytest.mark.parametrize(
    ("environment", "auth", "expected"),
    [
        ("development", "", "off"),
        ("staging", "", "required"),
        ("production", "", "required"),
        ("production", "off", "off"),
        ("development", "Required", "required"),
    ],
)
def test_auth_mode_defaults_by_environment(environment: str, auth: str, expected: str) -> None:
    assert load_config({"ENVIRONMENT": environment, "AUDITLOG_AUTH": auth}).access.auth == expected


def test_unknown_auth_mode_is_refused() -> None:
    with pytest.raises(ConfigError, match="AUDITLOG_AUTH: got 'maybe', want required or off"):
        load_config({"AUDITLOG_AUTH": "maybe"})


def test_tls_files_come_in_pairs_and_exist(tmp_path: Path) -> None:
    cert = tmp_path / "c.pem"
    cert.write_text("x")
    with pytest.raises(ConfigError, match="GRPC_TLS_KEY_FILE"):
        load_config({"GRPC_TLS_CERT_FILE": str(cert)})
    with pytest.raises(ConfigError, match="HTTP_TLS_CERT_FILE"):
        load_config({"HTTP_TLS_KEY_FILE": str(cert)})
    with pytest.raises(ConfigError, match="GRPC_TLS_CLIENT_CA_FILE: got '/nonexistent'"):
        load_config({"GRPC_TLS_CLIENT_CA_FILE": "/nonexistent"})
    with pytest.raises(ConfigError, match="GRPC_TLS_CLIENT_CA_FILE: got a file without GRPC_TLS_CERT_FILE"):
        load_config({"GRPC_TLS_CLIENT_CA_FILE": str(cert)})


def test_tls_roles_map_identities_to_roles(tmp_path: Path) -> None:
    pem = tmp_path / "c.pem"
    pem.write_text("x")
    tls = {"GRPC_TLS_CERT_FILE": str(pem), "GRPC_TLS_KEY_FILE": str(pem), "GRPC_TLS_CLIENT_CA_FILE": str(pem)}
    access = load_config({**tls, "AUDITLOG_TLS_ROLES": '{"spiffe://x/w": "writer"}'}).access
    assert access.tls_roles == (("spiffe://x/w", Role.WRITER),) and access.mutual_tls
    with pytest.raises(ConfigError, match="AUDITLOG_TLS_ROLES: want a JSON object"):
        load_config({**tls, "AUDITLOG_TLS_ROLES": '{"spiffe://x/w": "root"}'})
    with pytest.raises(ConfigError, match="without GRPC_TLS_CLIENT_CA_FILE"):
        load_config({"AUDITLOG_TLS_ROLES": '{"spiffe://x/w": "writer"}'})


def test_grpc_on_loopback_with_envoy_on_every_interface() -> None:
    config = load_config({"GRPC_HOST": "127.0.0.1", "HTTP_HOST": "0.0.0.0"})
    settings = GatewaySettings.for_service(config, 50051)
    assert (settings.listen_host, settings.upstream_host) == ("0.0.0.0", "127.0.0.1")
    rendered = yaml.safe_load(render_config(settings))
    listener = rendered["static_resources"]["listeners"][0]
    assert listener["address"]["socket_address"]["address"] == "0.0.0.0"
    assert "transport_socket" not in listener["filter_chains"][0]
    assert load_config({"GRPC_HOST": "127.0.0.1"}).http_host is None
