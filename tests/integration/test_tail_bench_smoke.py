"""A tiny run of bench.tail_latency: it runs end to end and every event appended reaches the tail.
Not a timed test: the figures of a run this small mean nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_tail_latency_bench_runs_and_receives_every_event() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.tail_latency",
            "--workers",
            "2",
            "--batches",
            "2",
            "--loaders",
            "1",
            "--singles",
            "3",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "received 2,000 of 2,000" in done.stdout
    for row in (
        "| every event, under AppendEvents load | 2,000 |",
        "| single CreateEvent, idle log (50 ms apart) | 3 |",
    ):
        assert row in done.stdout, done.stdout
