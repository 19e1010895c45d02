"""Client processes: each opens its own channel, warms up, waits for the start signal, then runs."""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from contextlib import AbstractContextManager, ExitStack, nullcontext
from dataclasses import dataclass
from multiprocessing.synchronize import Event as MpEvent
from typing import Any

import grpc

from audit.v1 import audit_service_pb2 as pb
from audit.v1 import event_pb2
from bench.workload import BATCH, append_template, create_request

CREATE_METHOD = "/audit.v1.AuditService/CreateEvent"
APPEND_METHOD = "/audit.v1.AuditService/AppendEvents"
# Connections each AppendEvents loader spreads its batches over (see _append_worker).
CONNECTIONS_PER_LOADER = 4
_SPAWN = mp.get_context("spawn")
# With the server's auth on, the API key every call carries (spawned client processes inherit it).
API_KEY_VARIABLE = "BENCH_API_KEY"
# Bounds every wait on client processes, so a wedged run ends by itself.
READY_TIMEOUT = 120.0


@dataclass(frozen=True)
class WorkerResult:
    calls: int
    events: int
    seconds: float
    latencies: list[float]
    # CPU time of the client process (every thread, gRPC's own included) over the measured calls.
    cpu_seconds: float = 0.0


def _credentials() -> tuple[tuple[str, str], ...] | None:
    key = os.environ.get(API_KEY_VARIABLE)
    return (("authorization", f"Bearer {key}"),) if key else None


def _unary_worker(
    target: str, method: str, duration: float, tag: str, ready: Any, go: MpEvent, results: Any
) -> None:
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(
            method,
            request_serializer=pb.CreateEventRequest.SerializeToString,
            response_deserializer=event_pb2.AuditEvent.FromString,
        )
        request = create_request(hash(tag) % 100_000, f"{tag}-warmup")
        metadata = _credentials()
        call(request, timeout=30, metadata=metadata)
        ready.put(tag)
        if not go.wait(READY_TIMEOUT):
            results.put(WorkerResult(0, 0, 0.0, []))
            return
        latencies: list[float] = []
        cpu = time.process_time()
        start = time.perf_counter()
        deadline = start + duration
        now = start
        while now < deadline:
            request.event.request_id = f"{tag}-{len(latencies)}"
            call(request, timeout=30, metadata=metadata)
            after = time.perf_counter()
            latencies.append(after - now)
            now = after
        cpu = time.process_time() - cpu
        results.put(WorkerResult(len(latencies), len(latencies), now - start, latencies, cpu))


def _append_worker(target: str, batches: list[int], tag: str, ready: Any, go: MpEvent, results: Any) -> None:
    request = append_template()
    with ExitStack() as stack:
        # Each loader takes turns over CONNECTIONS_PER_LOADER connections of its own, as that many
        # client instances would: with several server workers on one port, the kernel places each
        # connection on one worker, and four connections in all could well land on one worker.
        calls = []
        for _ in range(CONNECTIONS_PER_LOADER):
            channel = stack.enter_context(
                grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
            )
            calls.append(
                channel.unary_unary(
                    APPEND_METHOD,
                    request_serializer=pb.AppendEventsRequest.SerializeToString,
                    response_deserializer=pb.AppendEventsResponse.FromString,
                )
            )
            grpc.channel_ready_future(channel).result(timeout=30)
        ready.put(tag)
        if not go.wait(READY_TIMEOUT):
            results.put(WorkerResult(0, 0, 0.0, []))
            return
        latencies: list[float] = []
        metadata = _credentials()
        start = time.perf_counter()
        for number, batch in enumerate(batches):
            for j, event in enumerate(request.events):
                event.request_id = f"{tag}-{batch * BATCH + j}"
            before = time.perf_counter()
            calls[number % len(calls)](request, timeout=120, metadata=metadata)
            latencies.append(time.perf_counter() - before)
        seconds = time.perf_counter() - start
        results.put(WorkerResult(len(batches), len(batches) * BATCH, seconds, latencies))


def run_workers(
    target: str, specs: list[tuple[Any, ...]], worker: Any, during: AbstractContextManager[Any] | None = None
) -> tuple[list[WorkerResult], float]:
    """Starts one process per spec, releases them together, returns their results and wall time.
    during, when given, is entered just before the release and left once every result is in: a
    measurement over the calls only, without the processes' start-up and warm-up."""
    ready, results = _SPAWN.Queue(), _SPAWN.Queue()
    go = _SPAWN.Event()
    processes = [_SPAWN.Process(target=worker, args=(target, *spec, ready, go, results)) for spec in specs]
    for process in processes:
        process.start()
    try:
        for _ in processes:
            ready.get(timeout=READY_TIMEOUT)
        with during or nullcontext():
            start = time.perf_counter()
            go.set()
            collected = [results.get(timeout=READY_TIMEOUT * 10) for _ in processes]
            wall = time.perf_counter() - start
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    return collected, wall


def unary_load(
    target: str,
    method: str,
    clients: int,
    duration: float,
    tag: str,
    during: AbstractContextManager[Any] | None = None,
) -> tuple[list[WorkerResult], float]:
    specs = [(method, duration, f"{tag}-{i}") for i in range(clients)]
    return run_workers(target, specs, _unary_worker, during)


def append_load(
    target: str, first_batch: int, batches: int, clients: int, tag: str
) -> tuple[list[WorkerResult], float]:
    specs = [(list(range(first_batch + i, first_batch + batches, clients)), tag) for i in range(clients)]
    return run_workers(target, specs, _append_worker)
