"""The Python cost of one AppendEvents request, stage by stage, without gRPC or the database.

    .venv/bin/python -m bench.append_path [--rounds 60]

A 1,000-event request of the benchmark's events (bench/workload.py, each with a request_id) goes
through what the server does with it in one thread: parse and validate (api/convert.py), ids and
canonical segments plus the COPY fields (Sequencer.append's share), the sequencer's records and COPY
lines (sequencer.Batch, storage/postgres/copy_text.py), and the answer (fill_event_proto, serialised).
Prints µs per event for each stage, the median of the fastest sixth of the rounds: a steady figure
for before/after comparisons of per-event Python, where bench.run's rates move 15-25% between runs
on a 2-core VM. Not the server's CPU per event, which adds gRPC, thread hand-offs and psycopg.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime

from audit.v1 import audit_service_pb2 as pb
from auditlog.api.convert import event_and_details_from_proto, fill_event_proto
from auditlog.domain.chain import prepare_event
from auditlog.domain.event import random_uuids
from auditlog.sequencer import Batch
from auditlog.storage.api import HeadState
from auditlog.storage.postgres.copy_text import copy_fields, copy_line, copy_timestamp
from bench.workload import BATCH, append_template

STAGES = ("parse and validate", "ids, segments, COPY fields", "records and COPY lines", "answer")


def one_request(data: bytes) -> list[float]:
    """Seconds per stage for one serialised AppendEventsRequest."""
    started = time.perf_counter()
    request = pb.AppendEventsRequest.FromString(data)
    converted = [
        event_and_details_from_proto(message, prefix=f"events[{i}]")
        for i, message in enumerate(request.events)
    ]
    events = [event for event, _ in converted]
    parsed = time.perf_counter()
    prepared = [prepare_event(e, i) for e, i in zip(events, random_uuids(len(events)), strict=True)]
    texts = [copy_fields(e) for e in events]
    placed = time.perf_counter()
    now = datetime.now(UTC)
    batch = Batch([prepared], HeadState(0, bytes(32), None), {}, now, [texts])
    recorded_at = copy_timestamp(now)
    lines = "".join(copy_line(record, recorded_at, fields) for record, fields in batch.build())
    built = time.perf_counter()
    response = pb.AppendEventsResponse()
    add = response.events.add
    for record, (event, sent) in zip(batch.results[0], converted, strict=True):
        fill_event_proto(add(), record, sent if record.details is event.details else None)
    response.SerializeToString()
    answered = time.perf_counter()
    assert lines.count("\n") == len(events)
    return [parsed - started, placed - parsed, built - placed, answered - built]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=60, help="requests timed (default 60)")
    args = parser.parse_args(argv)
    request = append_template()
    for index, event in enumerate(request.events):
        event.request_id = f"path-{index}"
    data = request.SerializeToString()
    for _ in range(5):
        one_request(data)
    rounds = [one_request(data) for _ in range(args.rounds)]
    keep = max(1, args.rounds // 6)
    totals = sorted(sum(r) for r in rounds)[:keep]
    for index, stage in enumerate(STAGES):
        fastest = sorted(r[index] for r in rounds)[:keep]
        print(f"{stage:28s} {statistics.median(fastest) / BATCH * 1e6:6.2f} µs/event")
    print(f"{'in all':28s} {statistics.median(totals) / BATCH * 1e6:6.2f} µs/event")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
