"""A tiny run of bench.tail_latency: it runs end to end and every event appended reaches the tail.
Not a timed test: the figures of a run this small mean nothing."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_tail_latency_bench_runs_and_receives_every_event() -> None:
    command = [
        sys.executable,
        "-m",
        "bench.tail_latency",
        "--workers",
        "2",
        "--batches",
        "2",
        "--loaders",
        "1",
    ]
    done = subprocess.run(
        [*command, "--singles", "3"], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    received = re.search(r"received ([\d,]+) of ([\d,]+)", done.stdout)
    assert received is not None and received.group(1) == received.group(2), done.stdout
    assert int(received.group(1).replace(",", "")) >= 2_000  # the batches, and the probes beside them
    for row in (
        "| every event, recorded_at to tail, under load |",
        "| CreateEvent probes, idle log: answer to tail",
    ):
        assert row in done.stdout, done.stdout
