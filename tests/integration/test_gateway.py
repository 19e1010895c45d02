"""The gateway module and Envoy itself: rendering, gRPC through Envoy, admin on a private Unix socket."""

from __future__ import annotations

import json
import shutil
import socket
import stat
import subprocess
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from auditlog.config import Config
from auditlog.gateway import (
    GatewayError,
    GatewaySettings,
    admin_get,
    envoy_path,
    render_config,
    start_gateway,
)
from tests.fix_gateway import RestStack

GRPCURL = shutil.which("grpcurl") or str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "grpcurl")
SERVICES = {
    "audit.v1.AuditService",
    "audit.v1.HealthService",
    "audit.v1.ExportService",
    "audit.v1.KeyService",
    "audit.v1.LogService",
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
}


def settings(**overrides: object) -> GatewaySettings:
    values: dict[str, object] = {
        "listen_host": "127.0.0.1",
        "listen_port": 8123,
        "upstream_host": "127.0.0.1",
        "upstream_port": 50123,
    }
    values.update(overrides)
    return GatewaySettings(**values)  # type: ignore[arg-type]


def test_rendered_config_holds_ports_upstream_and_origins() -> None:
    rendered = render_config(settings(cors_origins=("http://a.example", 'http://q"uote.example')))
    assert "port_value: 8123" in rendered
    assert "port_value: 50123" in rendered
    assert '[{"exact": "http://a.example"}, {"exact": "http://q\\"uote.example"}]' in rendered
    assert "${" not in rendered
    assert 'pipe: {path: "envoy-admin.sock", mode: 384}' in rendered  # admin: a Unix socket, 0600
    assert "enable_reuse_port: false" in rendered


def test_rendered_config_passes_envoys_own_validation(tmp_path: Path) -> None:
    path = tmp_path / "envoy.yaml"
    path.write_text(render_config(settings(cors_origins=("http://localhost:3000",))))
    done = subprocess.run(
        [str(envoy_path()), "--mode", "validate", "--config-path", str(path), "--disable-hot-restart"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_service_on_every_interface_is_reached_over_loopback() -> None:
    config = Config(database_url=None, data_dir=Path("d"), grpc_host="0.0.0.0", http_port=8000)
    chosen = GatewaySettings.for_service(config, 50051)
    assert (chosen.listen_host, chosen.listen_port) == ("0.0.0.0", 8000)
    assert (chosen.upstream_host, chosen.upstream_port) == ("127.0.0.1", 50051)


def test_missing_descriptor_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "envoy.yaml.tmpl").write_text("x")
    with pytest.raises(GatewayError, match=r"generate\.py"):
        render_config(settings(), tmp_path)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def tcp_listening_ports(pid: int) -> set[int]:
    """The TCP ports process pid listens on (from /proc: its socket inodes in the kernel's tables)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = str(fd.readlink())
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    ports = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def test_admin_interface_is_a_unix_socket_only_its_owner_opens(tmp_path: Path) -> None:
    port = free_port()
    data_dir = tmp_path / "data"
    with (tmp_path / "envoy.log").open("wb") as log:
        gateway = start_gateway(settings(listen_port=port, admin_dir=data_dir, concurrency=1), stderr=log)
    try:
        assert gateway.admin_socket == data_dir.resolve() / f"envoy-admin-{port}.sock"
        mode = gateway.admin_socket.stat().st_mode
        assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
        assert admin_get(gateway.admin_socket, "/ready").strip() == b"LIVE"
        # No admin port: the REST listener is the only TCP port Envoy listens on.
        assert tcp_listening_ports(gateway.pid) == {port}
    finally:
        gateway.stop()
    assert not gateway.admin_socket.exists()


def test_admin_socket_falls_back_to_a_short_path_for_a_deep_data_dir(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    with (tmp_path / "envoy.log").open("wb") as log:
        gateway = start_gateway(settings(listen_port=free_port(), admin_dir=deep, concurrency=1), stderr=log)
    try:
        assert gateway.admin_socket.parent == gateway.workdir
        assert stat.S_IMODE(gateway.admin_socket.stat().st_mode) == 0o600
        assert admin_get(gateway.admin_socket, "/ready").strip() == b"LIVE"
    finally:
        gateway.stop()


def test_grpcurl_lists_services_through_envoy(rest: RestStack) -> None:
    done = subprocess.run(
        [GRPCURL, "-plaintext", rest.grpc_target, "list"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert set(done.stdout.split()) == SERVICES


def test_grpcurl_health_check_through_envoy(rest: RestStack) -> None:
    done = subprocess.run(
        [
            GRPCURL,
            "-plaintext",
            "-d",
            '{"service": "audit.v1.AuditService"}',
            rest.grpc_target,
            "grpc.health.v1.Health/Check",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert json.loads(done.stdout) == {"status": "SERVING"}


def test_grpcurl_calls_a_method_through_envoy(rest: RestStack) -> None:
    done = subprocess.run(
        [GRPCURL, "-plaintext", rest.grpc_target, "audit.v1.HealthService/Live"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert json.loads(done.stdout) == {"status": "alive"}


def test_python_clients_health_and_reflection_through_envoy(rest: RestStack) -> None:
    with grpc.insecure_channel(rest.grpc_target) as channel:
        status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert status.status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = reflection.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10
        )
        names = {s.name for reply in replies for s in reply.list_services_response.service}
        assert names == SERVICES


def test_grpc_error_passes_through_envoy_unchanged(rest: RestStack) -> None:
    from audit.v1 import audit_service_pb2, audit_service_pb2_grpc

    with grpc.insecure_channel(rest.grpc_target) as channel:
        stub = audit_service_pb2_grpc.AuditServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.GetEvent(
                audit_service_pb2.GetEventRequest(id="00000000-0000-4000-8000-000000000000"), timeout=10
            )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
