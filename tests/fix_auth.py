"""Services with AUDITLOG_AUTH=required: API keys for every role (one revoked), and mutual TLS with
client certificates made here with `cryptography`, whose SAN URIs map to roles."""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import psycopg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from auditlog.access import AccessConfig
from auditlog.api.principal import Role
from auditlog.app import Service, create_service
from auditlog.config import Config
from auditlog.gateway import Gateway, GatewaySettings, start_gateway
from auditlog.storage.postgres import api_keys
from auditlog.storage.postgres.migrations import apply_migrations
from tests.fix_db import create_database, drop_database, login_url
from tests.fix_gateway import RestStack

SPIFFE = "spiffe://auditlog.test/"


@dataclass(frozen=True)
class Pem:
    cert: bytes
    key: bytes


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make_ca(common: str = "auditlog test CA") -> tuple[Pem, ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common))
        .issuer_name(_name(common))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return _pem(cert, key), key, cert


def issue(
    ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, common: str, sans: list[x509.GeneralName]
) -> Pem:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return _pem(cert, key)


def _pem(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Pem:
    return Pem(
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )


def server_sans() -> list[x509.GeneralName]:
    return [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]


@dataclass
class Pki:
    """A CA, the server's certificate files, and a client certificate per role (plus one no role maps)."""

    directory: Path
    ca: Pem
    clients: dict[str, Pem]

    @property
    def cert_file(self) -> Path:
        return self.directory / "server.crt"

    @property
    def key_file(self) -> Path:
        return self.directory / "server.key"

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.crt"


def make_pki(directory: Path) -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key, ca_cert = make_ca()
    server = issue(ca_key, ca_cert, "auditlog server", server_sans())
    clients = {
        name: issue(ca_key, ca_cert, name, [x509.UniformResourceIdentifier(SPIFFE + name)])
        for name in [*(role.value for role in Role), "stranger"]
    }
    pki = Pki(directory, ca, clients)
    pki.cert_file.write_bytes(server.cert)
    pki.key_file.write_bytes(server.key)
    pki.ca_file.write_bytes(ca.cert)
    return pki


def tls_channel(target: str, root: bytes, client: Pem | None = None) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=root,
        private_key=client.key if client else None,
        certificate_chain=client.cert if client else None,
    )
    return grpc.secure_channel(target, credentials, options=[("grpc.ssl_target_name_override", "localhost")])


@dataclass
class AuthStack:
    """A service with auth required and mutual TLS on its port; `plain_port` is its loopback port
    without TLS (Envoy's), where API keys are the only credentials."""

    service: Service
    pki: Pki
    keys: dict[str, str]  # role name (and "revoked") -> secret
    database_url: str

    @property
    def tls_target(self) -> str:
        return f"localhost:{self.service.port}"

    @property
    def plain_target(self) -> str:
        return f"127.0.0.1:{self.service.gateway_port}"


def auth_config(tmp: Path, pki: Pki | None) -> Config:
    settings = AccessConfig(auth="required")
    if pki is not None:
        settings = dataclasses.replace(
            settings,
            grpc_tls_cert_file=pki.cert_file,
            grpc_tls_key_file=pki.key_file,
            grpc_tls_client_ca_file=pki.ca_file,
            tls_roles=tuple((SPIFFE + role.value, role) for role in Role),
        )
    return Config(
        database_url=None,
        data_dir=tmp / "data",
        grpc_host="127.0.0.1",
        grpc_port=0,
        http_port=0,
        access=settings,
    )


def make_keys(owner_url: str) -> dict[str, str]:
    """A key per role and a revoked one, made as the owner (as `auditlog keys create` does)."""
    with psycopg.connect(owner_url, autocommit=True) as conn:
        keys = {role.value: api_keys.create_key(conn, f"test-{role.value}", role.value)[1] for role in Role}
        keys["revoked"] = api_keys.create_key(conn, "test-revoked", Role.ADMIN.value)[1]
        api_keys.revoke_key(conn, "test-revoked")
    return keys


@pytest.fixture(scope="module")
def auth_stack(
    admin_url: str, test_login: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AuthStack]:
    """One per test module, over a database of its own."""
    url = create_database(admin_url)
    tmp = tmp_path_factory.mktemp("auth")
    try:
        pki = make_pki(tmp / "pki")
        apply_migrations(url)
        keys = make_keys(url)
        service = create_service(
            auth_config(tmp, pki),
            database_url=login_url(url, test_login),
            migration_url=url,
            health_interval=0.2,
        )
        try:
            yield AuthStack(service, pki, keys, url)
        finally:
            service.stop(grace=2)
    finally:
        drop_database(admin_url, url)


@pytest.fixture(scope="module")
def auth_rest(auth_stack: AuthStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RestStack]:
    """Envoy in front of auth_stack's service (through its loopback port)."""
    tmp = tmp_path_factory.mktemp("auth-rest")
    config = Config(database_url=None, data_dir=tmp, grpc_host="127.0.0.1", http_port=0)
    settings = dataclasses.replace(
        GatewaySettings.for_service(config, auth_stack.service.gateway_port), concurrency=1
    )
    with (tmp / "envoy.log").open("wb") as envoy_log:
        gateway: Gateway = start_gateway(settings, stderr=envoy_log)
    try:
        yield RestStack(auth_stack.service, gateway, auth_stack.database_url)
    finally:
        gateway.stop()
