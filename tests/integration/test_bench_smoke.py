"""A smoke run of the benchmark (tiny sizes): it runs end to end and prints every row of its table.

Not a timed test: the figures of a run this small mean nothing; bench/RESULTS.md holds a full run.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

from auditlog.workers import WorkerSpec, start_workers

ROOT = Path(__file__).resolve().parents[2]
EXPECTED_ROWS = (
    "| CreateEvent, 1 client |",
    "| CreateEvent, 4 clients |",
    "| AppendEvents, 2 clients x 1,000-event batches |",
    "| VerifyChain over ",
    "| Server peak RSS while verifying",
    "first page (50/page)",
    "pages deep (50/page)",
    "user_id filter (50/page)",
    "one-hour time range (50/page)",
    "| GetStats at ",
    "| SearchEvents, event_type filter",
)


def run_module(*args: str, timeout: float = 120, returncode: int = 0) -> subprocess.CompletedProcess[str]:
    """python -m args from the repository root; fails the test unless it exits with returncode."""
    done = subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == returncode, done.stderr[-3000:]
    return done


@pytest.mark.slow
def test_bench_command_prints_a_table_with_every_row() -> None:
    done = run_module(
        "bench.run",
        "--quick",
        "--events",
        "2000",
        "--seconds",
        "0.3",
        "--concurrency",
        "1,4",
        "--loaders",
        "2",
        timeout=240,
    )
    table = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| Measurement | Result | Compared with (same run) |")
    for expected in EXPECTED_ROWS:
        assert any(expected in line for line in table), f"no row {expected!r} in:\n{done.stdout}"
    # Two log sizes, each verified right after loading and after VACUUM.
    assert sum("| VerifyChain over " in line for line in table) == 4
    assert sum("| ListEvents at " in line for line in table) == 4
    # The progress lines say where the CPU of a call goes, the clients' included.
    cpu_split = (
        r"CreateEvent x4: .*; CPU per call, server [0-9,]+ us \(no-op [0-9,]+ us\), PostgreSQL [0-9,]+ us,"
    )
    cpu_split += r" clients [1-9][0-9,]* us \(no-op [1-9][0-9,]* us\), in all [0-9,]+ us \(no-op [0-9,]+ us\)"
    assert re.search(cpu_split, done.stderr), done.stderr[-3000:]


@pytest.mark.slow
def test_bench_with_two_pinned_workers_runs_the_append_row() -> None:
    done = run_module(
        "bench.run",
        "--only",
        "append",
        "--events",
        "2000",
        "--loaders",
        "2",
        "--workers",
        "2",
        "--cpu-affinity",
        "auto",
    )
    assert "server: 2 worker processes (AUDITLOG_WORKERS), pinned to CPUs " in done.stdout
    assert "| AppendEvents, 2 clients x 1,000-event batches |" in done.stdout
    # The CPU split lists the process that started the workers, then each worker.
    assert re.search(r"\(by process: [0-9.]+s, [0-9.]+s, [0-9.]+s\)", done.stderr), done.stderr[-3000:]


def test_append_path_prints_each_stage_per_event() -> None:
    done = run_module("bench.append_path", "--rounds", "2")
    lines = done.stdout.splitlines()
    assert [line[:28].strip() for line in lines] == [
        "parse and validate",
        "ids, segments, COPY fields",
        "records and COPY lines",
        "answer",
        "in all",
    ]
    assert all(float(line[28:].split()[0]) > 0 for line in lines)


@pytest.mark.slow
def test_fuzz_command_prints_counts_and_passes_on_a_small_run() -> None:
    done = run_module("bench.fuzz", "--grpc", "80", "--rest", "40", "--seed", "3")
    assert "gRPC: 80 requests" in done.stdout
    assert "REST: 40 requests" in done.stdout
    assert "failures (INTERNAL/5xx/no answer): 0" in done.stdout
    assert "chain valid=True" in done.stdout


def test_bench_imports_only_public_names_of_the_product() -> None:
    private = []
    for path in sorted((ROOT / "bench").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("auditlog"):
                names = [*(node.module or "").split("."), *(alias.name for alias in node.names)]
                private += [f"{path.name}:{node.lineno} {name}" for name in names if name.startswith("_")]
    assert private == []


def test_workers_carry_no_benchmark_hook() -> None:
    # The benchmark adds its echo RPC in processes of its own (bench/server_process.py).
    assert [field.name for field in dataclasses.fields(WorkerSpec)] == [
        "index",
        "config",
        "database_url",
        "log_level",
        "max_workers",
        "metrics_dir",
    ]
    assert "setup" not in inspect.signature(start_workers).parameters


@pytest.mark.slow
def test_chaos_command_prints_a_row_per_round_and_passes() -> None:
    done = run_module("bench.chaos", "--rounds", "1", "--seconds", "1", "--outage", "1", timeout=180)
    rows = [line for line in done.stdout.splitlines() if re.match(r"\| \d+ \| ", line)]
    assert [row.split(" | ")[1] for row in rows] == ["kill", "term", "postgres"], done.stdout
    for row in rows:
        # Acknowledged, lost, INTERNAL, other failures; the chain verified after the round.
        cells = row.strip("| ").split(" | ")
        assert int(cells[2].replace(",", "")) > 0 and cells[3:6] == ["0", "0", "0"], row
        assert cells[-1] == "valid", row
        assert re.fullmatch(r"\d+ MB", cells[-2]), row
    assert "0 lost, 0 INTERNAL answers" in done.stdout
