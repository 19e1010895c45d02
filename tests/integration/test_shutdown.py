"""Graceful shutdown: watchers see NOT_SERVING, in-flight appends finish and are kept, the rest are
refused cleanly; nothing acknowledged is lost."""

from __future__ import annotations

import contextlib
import threading
import time

import grpc
import psycopg
from grpc_health.v1 import health_pb2, health_pb2_grpc

from auditlog.app import Service
from auditlog_client import AuditClient, AuditLogClientError


def test_stop_drains_in_flight_appends_and_loses_nothing_acknowledged(
    service: Service, target: str, database_url: str
) -> None:
    acknowledged: list[str] = []
    refused: list[grpc.StatusCode] = []
    lock = threading.Lock()
    stop_writers = threading.Event()

    def writer(worker: int) -> None:
        with AuditClient(target, timeout=10) as client:
            for i in range(10_000):
                if stop_writers.is_set():
                    return
                try:
                    event = client.create_event(
                        event_type="drain.test", action="append", resource_id=f"{worker}-{i}"
                    )
                except AuditLogClientError as err:
                    with lock:
                        refused.append(err.code)
                    return
                with lock:
                    acknowledged.append(event.id)

    watch_channel = grpc.insecure_channel(target)
    watch = health_pb2_grpc.HealthStub(watch_channel).Watch(health_pb2.HealthCheckRequest(service=""))
    seen: list[int] = []

    def follow() -> None:
        with contextlib.suppress(grpc.RpcError):  # the stream ends when the server stops
            seen.extend(message.status for message in watch)

    follower = threading.Thread(target=follow)
    follower.start()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    service.stop(grace=3)
    stop_writers.set()
    for thread in [*threads, follower]:
        thread.join(30)
    watch_channel.close()

    assert seen[0] == health_pb2.HealthCheckResponse.SERVING
    assert seen[-1] == health_pb2.HealthCheckResponse.NOT_SERVING
    assert len(acknowledged) > 0
    # New calls are refused with UNAVAILABLE (retry elsewhere), never CANCELLED; none was acknowledged.
    assert set(refused) <= {grpc.StatusCode.UNAVAILABLE}
    with psycopg.connect(database_url) as conn:
        stored = {str(row[0]) for row in conn.execute("SELECT id FROM audit_events")}
        (count,) = conn.execute("SELECT sequence + 1 FROM log_head").fetchone() or (0,)
    assert set(acknowledged) <= stored
    assert count == len(stored)
