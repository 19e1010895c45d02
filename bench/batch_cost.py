"""The CPU of one sequencer batch, the sequencer's own and PostgreSQL's, without gRPC or threads.

    .venv/bin/python -m bench.batch_cost [--events 14] [--batches 1500]

Starts a fresh embedded PostgreSQL, then writes --batches batches of --events of the benchmark's
events (bench/workload.py) one after another through `Sequencer.append_batch` in this thread, as
the sequencer thread writes concurrent CreateEvent calls (14 is about the batch that 32 clients
make; up to ONE_TRIP_MAX_EVENTS go in one round trip, larger ones by COPY). Prints, per batch: the
wall time, this thread's CPU (building the records, psycopg, its system calls) and the CPU of the
PostgreSQL cluster (every process of it, as bench.run counts it, from /proc in 10 ms ticks: time
a few hundred batches at least). A steady figure for before/after comparisons of the write path,
where bench.run's CreateEvent rates move 15-25% between runs.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from auditlog.api.convert import event_and_details_from_proto
from auditlog.domain.chain import PreparedEvent, prepare_event
from auditlog.domain.event import random_uuids
from auditlog.sequencer import Sequencer
from auditlog.storage.database import create_pool
from auditlog.storage.events import EventStore
from auditlog.storage.migrations import apply_migrations
from bench.measure import postgres_cpu_seconds, postmaster_pid
from bench.run import embedded_database
from bench.workload import create_request

WARM_UP = 50


def prepared_batches(count: int, size: int) -> list[list[PreparedEvent]]:
    events = [
        event_and_details_from_proto(create_request(i, f"batch-cost-{i}").event)[0]
        for i in range(count * size)
    ]
    return [
        [
            prepare_event(e, i)
            for e, i in zip(events[n * size : (n + 1) * size], random_uuids(size), strict=True)
        ]
        for n in range(count)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.batch_cost",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--events", type=int, default=14, help="events per batch (default 14)")
    parser.add_argument("--batches", type=int, default=1_500, help="batches timed (default 1,500)")
    args = parser.parse_args(argv)
    if args.events < 1 or args.batches < 1:
        parser.error("--events and --batches: want whole numbers from 1")
    batches = prepared_batches(WARM_UP + args.batches, args.events)
    with tempfile.TemporaryDirectory(prefix="auditlog-batch-") as tmp, embedded_database(Path(tmp)) as url:
        apply_migrations(url)
        pool = create_pool(url, max_size=2)
        sequencer = Sequencer(EventStore(pool).writer())
        # Started only so that stop() closes its connection: nothing is queued, so its thread
        # waits while this one calls append_batch, as that thread does with queued calls.
        sequencer.start()
        try:
            for batch in batches[:WARM_UP]:
                sequencer.append_batch([batch])
            postmaster = postmaster_pid(Path(tmp) / "pgdata")
            wall, cpu, pg = time.perf_counter(), time.thread_time(), postgres_cpu_seconds(postmaster)
            for batch in batches[WARM_UP:]:
                sequencer.append_batch([batch])
            wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
            pg = postgres_cpu_seconds(postmaster) - pg
        finally:
            sequencer.stop()
            pool.close()
    n = args.batches
    print(f"{args.events} events a batch, {n:,} batches")
    print(f"wall time          {wall / n * 1e6:8.0f} µs/batch")
    print(f"sequencer CPU      {cpu / n * 1e6:8.0f} µs/batch  {cpu / n / args.events * 1e6:6.1f} µs/event")
    print(f"PostgreSQL         {pg / n * 1e6:8.0f} µs/batch  {pg / n / args.events * 1e6:6.1f} µs/event")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
