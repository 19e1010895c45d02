"""Calls racing a stop: each answers OK or UNAVAILABLE (the code retry policies retry), never
CANCELLED, and every acknowledged event is stored."""

from __future__ import annotations

import collections
import functools
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import psycopg

from audit.v1 import audit_service_pb2, audit_service_pb2_grpc, event_pb2
from auditlog.app import create_service
from tests.fix_db import login_url
from tests.fix_serve import alive, serve_env, start_serve
from tests.fix_server import server_config

ROUNDS = 3
# More callers than the server's 32 RPC threads, so calls wait in gRPC's core when the stop comes.
CALLERS = 48
SHUTTING_DOWN = "UNAVAILABLE: the server is shutting down; retry"


def race_a_stop(target: str, stop: Callable[[], None]) -> tuple[collections.Counter[str], set[str]]:
    """Runs stop() while CALLERS threads send CreateEvent to target back to back; returns the count
    of each answer (`CODE: details`, or OK) and the ids of the acknowledged events."""
    answers: collections.Counter[str] = collections.Counter()
    acknowledged: set[str] = set()
    lock = threading.Lock()
    done = threading.Event()

    def caller(worker: int) -> None:
        with grpc.insecure_channel(target) as channel:
            stub = audit_service_pb2_grpc.AuditServiceStub(channel)
            for i in range(1_000_000):
                if done.is_set():
                    return
                event = event_pb2.EventInput(
                    event_type="race.stop", action="append", resource_id=f"{worker}-{i}"
                )
                try:
                    created = stub.CreateEvent(audit_service_pb2.CreateEventRequest(event=event), timeout=10)
                except grpc.RpcError as err:
                    with lock:
                        answers[f"{err.code().name}: {err.details()}"] += 1
                    time.sleep(0.001)
                    continue
                with lock:
                    answers["OK"] += 1
                    acknowledged.add(created.id)

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(CALLERS)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    stop()
    time.sleep(0.2)  # calls after the stop, too
    done.set()
    for thread in threads:
        thread.join(15)
    assert not any(thread.is_alive() for thread in threads)
    return answers, acknowledged


def stored_ids(database_url: str) -> set[str]:
    with psycopg.connect(database_url) as conn:
        return {str(row[0]) for row in conn.execute("SELECT id FROM audit_events")}


def test_calls_racing_a_stop_answer_ok_or_unavailable_and_acknowledged_events_are_kept(
    database_url: str, test_login: str, tmp_path: Path
) -> None:
    for round_ in range(ROUNDS):
        service = create_service(
            server_config(tmp_path / str(round_)),
            database_url=login_url(database_url, test_login),
            migration_url=database_url,
            health_interval=0.2,
        )
        answers, acknowledged = race_a_stop(
            f"127.0.0.1:{service.port}", functools.partial(service.stop, grace=5)
        )
        codes = {answer.split(":")[0] for answer in answers}
        assert codes <= {"OK", "UNAVAILABLE"}, f"round {round_}: {answers}"
        # The drain held calls, then said why it refused them.
        assert answers["OK"] > 0 and answers[SHUTTING_DOWN] > 0, answers
        assert acknowledged <= stored_ids(database_url)


def test_sigterm_to_auditlog_serve_under_load_cancels_no_call(database_url: str, tmp_path: Path) -> None:
    serve = start_serve(serve_env(database_url, tmp_path), tmp_path / "serve.log")
    try:
        serve.wait_ready()
        answers, acknowledged = race_a_stop(
            f"127.0.0.1:{serve.grpc_port}", lambda: serve.process.send_signal(signal.SIGTERM)
        )
        assert serve.exit_code() == 0, serve.output()
    finally:
        if serve.process.poll() is None:
            serve.process.kill()
            serve.process.wait()
        if serve.envoy_pid and alive(serve.envoy_pid):
            os.kill(serve.envoy_pid, signal.SIGKILL)
    assert {answer.split(":")[0] for answer in answers} <= {"OK", "UNAVAILABLE"}, answers
    assert answers["OK"] > 0 and answers[SHUTTING_DOWN] > 0, answers
    assert acknowledged <= stored_ids(database_url)
