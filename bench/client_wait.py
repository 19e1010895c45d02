"""What a waiting gRPC client costs: the CPU a synchronous Python client spends per unary call, as a
function of how long the server takes to answer.

    .venv/bin/python -m bench.client_wait [--calls 200] [--waits 0,2,5,10,20]

A server process answers each call after the number of milliseconds the request asks for (its
handler sleeps; no other work). This process calls it as bench.run's clients call CreateEvent (one
blocking call after another on one channel) and measures its own CPU time (every thread, gRPC's
included) per call, for each wait: first with the machine otherwise idle, then with one niced
busy loop per CPU, as when bench.run's 32 clients, the server and PostgreSQL keep every CPU busy.

Why it matters: in bench.run the client processes share the machine with the server, and a call
that waits longer costs its client more CPU, which the server then lacks. CreateEvent waits for a
durable commit, so its calls take longer than the no-op's, and its clients spend more per call
(bench.run's progress line prints both; RESULTS.md, "Fifth session").
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time
from collections.abc import Iterator
from concurrent import futures
from contextlib import ExitStack, contextmanager
from typing import Any

import grpc

METHOD = "/bench.Wait/Sleep"
_SPAWN = mp.get_context("spawn")


def _sleep(request: bytes, context: Any) -> bytes:
    time.sleep(int.from_bytes(request, "big") / 1000)
    return b""


def _serve(port: Any) -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    handler = grpc.unary_unary_rpc_method_handler(_sleep)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("bench.Wait", {"Sleep": handler}),))
    port.value = server.add_insecure_port("127.0.0.1:0")
    server.start()
    server.wait_for_termination()


def _spin() -> None:
    os.nice(19)
    while True:
        pass


@contextmanager
def _process(target: Any, *args: Any) -> Iterator[None]:
    process = _SPAWN.Process(target=target, args=args, daemon=True)
    process.start()
    try:
        yield
    finally:
        process.terminate()  # a busy loop never ends; the server has answered every call by now
        process.join(10)


@contextmanager
def _busy_cpus() -> Iterator[None]:
    with ExitStack() as stack:
        for _ in range(os.cpu_count() or 1):
            stack.enter_context(_process(_spin))
        time.sleep(0.2)  # the busy loops running
        yield


def cpu_per_call(call: Any, wait_ms: int, calls: int) -> tuple[float, float]:
    """(CPU µs of this process per call, wall ms per call) over calls calls that wait wait_ms."""
    request = wait_ms.to_bytes(2, "big")
    call(request, timeout=30)
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(calls):
        call(request, timeout=30)
    return (time.process_time() - cpu) / calls * 1e6, (time.perf_counter() - wall) / calls * 1e3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--calls", type=int, default=200, help="calls per wait and machine state (default 200)"
    )
    parser.add_argument("--waits", default="0,2,5,10,20", help="server waits in ms (default 0,2,5,10,20)")
    args = parser.parse_args(argv)
    waits = [int(w) for w in args.waits.split(",")]
    port = _SPAWN.Value("i", 0)
    with _process(_serve, port):
        deadline = time.monotonic() + 30
        while not port.value:
            if time.monotonic() > deadline:
                raise SystemExit("bench.client_wait: the server process did not start within 30 s")
            time.sleep(0.05)
        with grpc.insecure_channel(f"127.0.0.1:{port.value}") as channel:
            call = channel.unary_unary(METHOD)
            grpc.channel_ready_future(channel).result(timeout=30)
            print(f"{'server wait':>11}  {'idle machine':>22}  {'busy machine':>22}")
            idle = [cpu_per_call(call, wait, args.calls) for wait in waits]
            with _busy_cpus():
                busy = [cpu_per_call(call, wait, args.calls) for wait in waits]
            for wait, (idle_cpu, idle_ms), (busy_cpu, busy_ms) in zip(waits, idle, busy, strict=True):
                print(
                    f"{wait:>8} ms  {idle_cpu:>6,.0f} µs CPU/call ({idle_ms:4.1f} ms)"
                    f"  {busy_cpu:>6,.0f} µs CPU/call ({busy_ms:4.1f} ms)"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
