"""`auditlog serve` with AUDITLOG_WORKERS=2: two gRPC server processes on one port, one chain.

Each gRPC channel here keeps a subchannel pool of its own, hence its own connection; the kernel
hands each new connection to one of the listening workers.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import grpc
import psycopg
import pytest

from auditlog_client import AuditClient, AuditLogClientError
from auditlog_client.client import event_input
from tests.fix_db import create_database, drop_database
from tests.fix_serve import (
    WORKERS,
    Serve,
    alive,
    grpc_serving,
    http_get,
    port_closed,
    serve_env,
    start_serve,
    wait_until,
)

CHANNELS = 12


@dataclass
class Workers:
    serve: Serve
    pids: list[int]
    database_url: str

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.serve.grpc_port}"

    def everyone(self) -> list[int]:
        return [self.serve.process.pid, *self.pids, self.serve.envoy_pid]


def start_workers_serve(database_url: str, tmp: Path) -> Workers:
    serve = start_serve(serve_env(database_url, tmp, AUDITLOG_WORKERS="2"), tmp / "serve.log")
    try:
        serve.wait_ready()
    except BaseException:
        serve.process.kill()  # its workers and Envoy follow (they get SIGTERM when it dies)
        serve.process.wait()
        raise
    match = WORKERS.search(serve.output())
    assert match is not None, serve.output()
    pids = [int(pid) for pid in match.group(2).split(", ")]
    assert int(match.group(1)) == len(pids) == 2
    return Workers(serve, pids, database_url)


def kill_all(workers: Workers) -> None:
    if workers.serve.process.poll() is None:
        workers.serve.process.kill()
        workers.serve.process.wait()
    for pid in [*workers.pids, workers.serve.envoy_pid]:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def shared(admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workers]:
    """One running two-worker service for the tests that leave it running (they share its log)."""
    url = create_database(admin_url)
    workers = None
    try:
        workers = start_workers_serve(url, tmp_path_factory.mktemp("workers"))
        yield workers
    finally:
        if workers is not None:
            kill_all(workers)
        drop_database(admin_url, url)


@pytest.fixture
def fresh(database_url: str, tmp_path: Path) -> Iterator[Workers]:
    """A two-worker service of its own, for the tests that stop it."""
    workers = start_workers_serve(database_url, tmp_path)
    try:
        yield workers
    finally:
        kill_all(workers)


def own_connection(target: str) -> grpc.Channel:
    """A channel that does not share its connection with other channels of this process."""
    return grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])


def tcp_sockets() -> Iterator[tuple[int, int, str, str]]:
    """(local port, remote port, state, inode) of this machine's TCP sockets (state 0A: listen,
    01: established)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, remote = (int(address.rsplit(":", 1)[1], 16) for address in fields[1:3])
            yield local, remote, fields[3], fields[9]


def socket_inodes(port: int, state: str, peers: set[int] | None = None) -> set[str]:
    """Inodes of the sockets whose local port is port, in state; with peers, only those whose
    remote port is one of peers."""
    return {
        inode
        for local, remote, found, inode in tcp_sockets()
        if local == port and found == state and (peers is None or remote in peers)
    }


def own_client_ports(port: int) -> set[int]:
    """The local ports of this process's connections to port (not Envoy's, say)."""
    held = set()
    for fd in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(FileNotFoundError):  # closed since the listing
            held.add(str(fd.readlink()))
    return {
        local
        for local, remote, state, inode in tcp_sockets()
        if remote == port and state == "01" and f"socket:[{inode}]" in held
    }


def holders(pids: list[int], inodes: set[str]) -> dict[int, int]:
    """For each pid, how many of the sockets inodes it holds."""
    wanted = {f"socket:[{inode}]" for inode in inodes}
    counts = {}
    for pid in pids:
        links = (str(fd.readlink()) for fd in Path(f"/proc/{pid}/fd").iterdir())
        counts[pid] = sum(1 for link in links if link in wanted)
    return counts


def stored_events(database_url: str) -> list[tuple[str, int]]:
    with psycopg.connect(database_url) as conn:
        return [
            (str(i), s) for i, s in conn.execute("SELECT id, sequence FROM audit_events ORDER BY sequence")
        ]


def test_both_workers_listen_on_the_one_port(shared: Workers) -> None:
    listening = holders(shared.pids, socket_inodes(shared.serve.grpc_port, "0A"))
    assert listening == {pid: 1 for pid in shared.pids}
    assert grpc_serving(shared.serve.grpc_port)
    assert http_get(shared.serve.http_port, "/health/ready") == 200


def test_concurrent_clients_on_many_connections_build_one_valid_chain(shared: Workers) -> None:
    """CreateEvent and AppendEvents from CHANNELS connections at once, spread over both workers."""

    def client_load(n: int, client: AuditClient) -> list[tuple[str, int]]:
        acknowledged = []
        for i in range(8):
            event = client.create_event(event_type="workers.create", action="create", resource_id=f"{n}-{i}")
            acknowledged.append((event.id, event.sequence))
            batch = [
                event_input(event_type="workers.append", action="append", resource_id=f"{n}-{i}-{j}")
                for j in range(20)
            ]
            acknowledged.extend((e.id, e.sequence) for e in client.append_events(batch))
        return acknowledged

    with ExitStack() as stack:
        clients: list[AuditClient] = []
        connected: dict[int, int] = {}
        # The kernel picks a worker per connection: connections are opened until both hold some
        # (at least CHANNELS; all 64 on one worker has a probability of 2 ** -63).
        while len(clients) < CHANNELS or (not all(connected.values()) and len(clients) < 64):
            client = stack.enter_context(AuditClient("", channel=own_connection(shared.target)))
            client.get_stats()  # the connection is up before the counting below
            clients.append(client)
            # Only this test's connections: Envoy's upstream connection sits on one worker too.
            port = shared.serve.grpc_port
            connected = holders(shared.pids, socket_inodes(port, "01", peers=own_client_ports(port)))
        with ThreadPoolExecutor(max_workers=len(clients)) as pool:
            acknowledged = [
                a for result in pool.map(client_load, range(len(clients)), clients) for a in result
            ]
        verified = clients[0].verify_chain(verify_all=True)

    assert all(count > 0 for count in connected.values()), connected
    assert len(acknowledged) == len(clients) * 8 * 21
    stored = stored_events(shared.database_url)
    assert [sequence for _, sequence in stored] == list(range(len(stored)))
    assert len({event_id for event_id, _ in stored}) == len(stored)
    assert set(acknowledged) <= set(stored)
    assert verified.valid, verified.message
    assert verified.events_checked == len(stored)


def test_a_retry_on_another_connection_returns_the_original(shared: Workers) -> None:
    with ExitStack() as stack:
        clients = [
            stack.enter_context(AuditClient("", channel=own_connection(shared.target)))
            for _ in range(CHANNELS)
        ]
        original = clients[0].create_event(event_type="workers.retry", action="pay", request_id="pay-42")
        retries = [
            client.create_event(event_type="workers.retry", action="pay", request_id="pay-42")
            for client in clients[1:]
        ]
    assert {(r.id, r.sequence) for r in retries} == {(original.id, original.sequence)}
    assert sum(1 for event_id, _ in stored_events(shared.database_url) if event_id == original.id) == 1


def test_sigterm_stops_every_worker_and_envoy_and_keeps_every_acknowledged_event(fresh: Workers) -> None:
    acknowledged: list[str] = []
    lock = threading.Lock()
    writing = threading.Event()

    def writer(n: int) -> None:
        with AuditClient("", channel=own_connection(fresh.target), timeout=10) as client:
            for i in range(100_000):
                try:
                    event = client.create_event(
                        event_type="workers.drain", action="append", resource_id=f"{n}-{i}"
                    )
                except AuditLogClientError:
                    return  # refused or cut off while stopping: not acknowledged
                with lock:
                    acknowledged.append(event.id)
                writing.set()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    assert writing.wait(20)
    fresh.serve.process.send_signal(signal.SIGTERM)
    code = fresh.serve.exit_code()
    for thread in threads:
        thread.join(30)

    assert code == 0, fresh.serve.output()
    assert not any(alive(pid) for pid in fresh.everyone())
    assert port_closed(fresh.serve.grpc_port)
    assert port_closed(fresh.serve.http_port)
    assert "Traceback" not in fresh.serve.output()
    stored = stored_events(fresh.database_url)
    assert acknowledged
    assert set(acknowledged) <= {event_id for event_id, _ in stored}
    assert [sequence for _, sequence in stored] == list(range(len(stored)))


def test_a_killed_worker_stops_the_rest_and_fails(fresh: Workers) -> None:
    killed = fresh.pids[0]
    os.kill(killed, signal.SIGKILL)
    assert fresh.serve.exit_code() == 1
    assert f"gRPC worker-1 (pid {killed}) exited unexpectedly with code -9" in fresh.serve.output()
    wait_until(lambda: not any(alive(pid) for pid in fresh.everyone()), timeout=10)
    assert port_closed(fresh.serve.grpc_port)


def test_no_worker_outlives_a_killed_serve(fresh: Workers) -> None:
    fresh.serve.process.kill()
    fresh.serve.process.wait()
    wait_until(lambda: not any(alive(pid) for pid in fresh.everyone()), timeout=15)


def test_a_bad_workers_value_fails_with_one_line(database_url: str, tmp_path: Path) -> None:
    env = serve_env(database_url, tmp_path, AUDITLOG_WORKERS="0")
    running = start_serve(env, tmp_path / "serve.log")
    assert running.exit_code() == 2
    assert running.output().strip().splitlines()[-1] == (
        "auditlog: configuration error: AUDITLOG_WORKERS: got '0', want a whole number from 1 to 64"
    )


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_taken_grpc_port_fails_clearly(database_url: str, tmp_path: Path, workers: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = serve_env(database_url, tmp_path, GRPC_PORT=str(port), AUDITLOG_WORKERS=workers)
        running = start_serve(env, tmp_path / "serve.log")
        assert running.exit_code(60) == 1
    assert f"auditlog: cannot start: cannot listen on 127.0.0.1:{port}" in running.output()
    assert "Traceback" not in running.output()
    assert "worker-" not in running.output()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_an_unreachable_database_fails_with_one_line(tmp_path: Path, workers: str) -> None:
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    url = f"postgresql://auditor:s3cret-pw@127.0.0.1:{port}/audit"
    running = start_serve(serve_env(url, tmp_path, AUDITLOG_WORKERS=workers), tmp_path / "serve.log")
    assert running.exit_code(60) == 1
    output = running.output()
    assert (
        f'auditlog: cannot start: connection failed: connection to server at "127.0.0.1", port {port} failed'
        in output
    )
    assert "Traceback" not in output
    assert "s3cret-pw" not in output
