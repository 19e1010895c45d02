"""Ports: a port left in TIME_WAIT by an earlier server can be reserved again at once; a port that a
running server holds cannot be taken by a second one."""

from __future__ import annotations

import shutil
import socket
import subprocess

from auditlog.workers import reserve_port


def time_wait_port() -> int:
    """A port whose listener closed after it closed a connection first: the server side of that
    connection stays in TIME_WAIT (for 60 s on Linux), as after a stopped single-process server."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port: int = listener.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = listener.accept()
        accepted.close()  # the server closes first: its end goes to TIME_WAIT
        client.recv(1)  # the client sees the close
        client.close()
    if shutil.which("ss"):
        states = subprocess.run(
            ["ss", "-Htan", "state", "time-wait", f"( sport = :{port} )"], capture_output=True, text=True
        )
        assert states.stdout.strip(), "no TIME_WAIT connection was left"
    return port


def test_a_port_in_time_wait_is_reserved_at_once() -> None:
    port = time_wait_port()
    with reserve_port("127.0.0.1", port) as reserved:
        assert reserved.port == port
