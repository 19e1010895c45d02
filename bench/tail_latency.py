"""TailEvents delivery latency: from an event's recorded_at (set just before its batch commits) to
the moment a tailing client receives it, while loader processes append 1,000-event batches.

    .venv/bin/python -m bench.tail_latency [--workers 2] [--batches 60] [--loaders 2]

A thread also sends a CreateEvent every 50 ms during the load: its answer comes after the commit,
so (tail receipt - answer) and (tail receipt - send) bound commit-to-client from below and above.

Starts its own embedded PostgreSQL and the server in a separate process (with --workers N > 1, N
processes on one port, so tails and appends usually meet on different processes and the wake-up
crosses processes through NOTIFY). Prints p50/p99/max over every event received, over the first
event of each message, and for single CreateEvent calls on an otherwise idle log. recorded_at and
the receipt are read from the same machine's clock; recorded_at precedes the commit by the batch's
write, so the figures are an upper bound of commit-to-client.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

import grpc

from audit.v1 import audit_service_pb2 as pb
from audit.v1 import audit_service_pb2_grpc, event_pb2
from bench.clients import append_load
from bench.run import embedded_database, server_process

PROBE = "bench.probe"


class Prober:
    """CreateEvent every interval seconds in a thread: the time each answer arrived, by sequence.
    The answer comes after the commit, so (tail receipt - answer) bounds commit-to-client from below
    and (tail receipt - send) from above."""

    def __init__(self, target: str, interval: float = 0.05) -> None:
        self.sent: dict[int, float] = {}
        self.answered: dict[int, float] = {}
        self._target = target
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with grpc.insecure_channel(self._target) as channel:
            stub = audit_service_pb2_grpc.AuditServiceStub(channel)
            while not self._stop.wait(self._interval):
                event = event_pb2.EventInput(event_type=PROBE, action="probe")
                before = time.time()
                recorded = stub.CreateEvent(pb.CreateEventRequest(event=event), timeout=30)
                self.answered[recorded.sequence] = time.time()
                self.sent[recorded.sequence] = before

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)


def probe_rows(name: str, prober: Prober, tail: Tail) -> list[str]:
    got = [s for s in prober.answered if s in tail.probes]
    after_answer = [max(0.0, tail.probes[s] - prober.answered[s]) for s in got]
    after_send = [tail.probes[s] - prober.sent[s] for s in got]
    return [
        summary(f"{name}: answer to tail (lower bound)", after_answer),
        summary(f"{name}: send to tail (upper bound)", after_send),
    ]


class Tail:
    """A TailEvents stream from now, noting (latency of each event, latency of each message's first)."""

    def __init__(self, target: str) -> None:
        self.events: list[float] = []
        self.messages: list[float] = []
        self.received = 0
        # Receipt time of each probe event (event_type bench.probe) by sequence.
        self.probes: dict[int, float] = {}
        self._channel = grpc.insecure_channel(target, options=[("grpc.max_receive_message_length", 8 << 20)])
        self._call = audit_service_pb2_grpc.AuditServiceStub(self._channel).TailEvents(pb.TailEventsRequest())
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for message in self._call:
                now = time.time()
                lags = [now - e.recorded_at.ToMicroseconds() / 1e6 for e in message.events]
                for event in message.events:
                    if event.event_type == PROBE:
                        self.probes[event.sequence] = now
                self.messages.append(lags[0])
                self.events.extend(lags)
                self.received += len(lags)
        except grpc.RpcError:
            return  # cancelled at the end

    def wait_for(self, count: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while self.received < count and time.monotonic() < deadline:
            time.sleep(0.05)

    def reset(self) -> None:
        self.events, self.messages, self.received, self.probes = [], [], 0, {}

    def close(self) -> None:
        self._call.cancel()
        self._channel.close()


def summary(name: str, values: list[float]) -> str:
    if not values:
        return f"| {name} | 0 | - | - | - |"
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"| {name} | {len(values):,} | {statistics.median(ordered) * 1000:.1f} ms | {p99 * 1000:.1f} ms"
        f" | {ordered[-1] * 1000:.1f} ms |"
    )


def run(workers: int, batches: int, loaders: int, singles: int) -> str:
    with tempfile.TemporaryDirectory(prefix="auditlog-tail-bench-") as tmp:
        workdir = Path(tmp)
        with (
            embedded_database(workdir) as database_url,
            server_process(database_url, workdir, workers) as (_, port),
        ):
            target = f"127.0.0.1:{port}"
            tail = Tail(target)
            time.sleep(1.0)  # the stream is open before the load starts
            prober = Prober(target)
            results, wall = append_load(target, 0, batches, loaders, "tail-bench")
            prober.stop()
            appended = sum(r.events for r in results) + len(prober.answered)
            tail.wait_for(appended)
            loaded = (list(tail.events), list(tail.messages), tail.received)
            loaded_probes = probe_rows("CreateEvent probes under load", prober, tail)
            tail.reset()
            idle_prober = Prober(target)
            deadline = time.monotonic() + 60
            while len(idle_prober.answered) < singles and time.monotonic() < deadline:
                time.sleep(0.05)
            idle_prober.stop()
            tail.wait_for(len(idle_prober.answered), timeout=30)
            idle = list(tail.events)
            idle_probes = probe_rows("CreateEvent probes, idle log", idle_prober, tail)
            tail.close()
    lines = [
        f"Tail delivery latency, {workers} server process(es); load: {loaders} AppendEvents clients x "
        f"{batches} batches of 1,000 ({appended / wall:,.0f} events/s over {wall:.1f} s); "
        f"received {loaded[2]:,} of {appended:,}",
        "",
        "| what | samples | p50 | p99 | max |",
        "| --- | --- | --- | --- | --- |",
        summary("every event, recorded_at to tail, under load", loaded[0]),
        summary("first event of each message, recorded_at to tail, under load", loaded[1]),
        *loaded_probes,
        summary("CreateEvent every 50 ms, idle log: recorded_at to tail", idle),
        *idle_probes,
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batches", type=int, default=60, help="1,000-event AppendEvents batches in all")
    parser.add_argument("--loaders", type=int, default=2)
    parser.add_argument("--singles", type=int, default=100, help="CreateEvent probes on the idle log")
    args = parser.parse_args(argv)
    print(run(args.workers, args.batches, args.loaders, args.singles))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
