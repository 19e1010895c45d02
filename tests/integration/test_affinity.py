"""AUDITLOG_CPU_AFFINITY: the value's forms, and `auditlog serve` pinning its gRPC server
processes (every thread, also those started later by calls) while Envoy stays unpinned; and the
garbage collector settings every server process takes (auditlog.tuning)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from auditlog.affinity import cpu_for, cpus_of, parse_cpu_affinity
from auditlog.config import load_config
from auditlog.errors import ConfigError
from auditlog.tuning import GC_THRESHOLDS
from auditlog_client import AuditClient
from auditlog_client.client import event_input
from tests.fix_serve import WORKERS, Serve, alive, serve_env, start_serve

FOUR = {0, 1, 2, 3}


def test_off_is_the_default() -> None:
    assert load_config({}).cpu_affinity == ()
    assert parse_cpu_affinity("off", FOUR) == parse_cpu_affinity(" ", FOUR) == ()


def test_auto_is_every_cpu_this_process_may_use() -> None:
    assert parse_cpu_affinity("auto", {3, 1}) == (1, 3)
    assert load_config({"AUDITLOG_CPU_AFFINITY": "AUTO"}).cpu_affinity == tuple(
        sorted(os.sched_getaffinity(0))
    )


def test_a_list_keeps_its_order_once_each_and_expands_ranges() -> None:
    assert parse_cpu_affinity("2-3,0", FOUR) == (2, 3, 0)
    assert parse_cpu_affinity(" 1 , 1,0-1 ", FOUR) == (1, 0)


def test_server_processes_take_the_cpus_in_turn() -> None:
    assert [cpu_for((2, 3, 0), number) for number in range(1, 6)] == [2, 3, 0, 2, 3]
    assert cpus_of((2, 3, 0), 5) == [2, 3, 0, 2, 3]
    assert cpus_of((), 3) == []


@pytest.mark.parametrize("value", ["fast", "1-0", "0,", "-1", "0-", "1.5"])
def test_a_malformed_value_names_the_variable_and_the_forms(value: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_cpu_affinity(value, FOUR)
    assert str(info.value) == (
        f"AUDITLOG_CPU_AFFINITY: got {value!r}, want off, auto, or CPU numbers such as 0,2-3"
    )


def test_a_cpu_this_process_may_not_use_is_refused() -> None:
    with pytest.raises(ConfigError) as info:
        parse_cpu_affinity("1,4-5", {0, 1})
    assert (
        str(info.value) == "AUDITLOG_CPU_AFFINITY: CPU 4, 5 not available to this process (available: 0, 1)"
    )


def test_serve_refuses_an_unavailable_cpu_with_one_line(database_url: str, tmp_path: Path) -> None:
    cpu = max(os.sched_getaffinity(0)) + 1
    running = start_serve(
        serve_env(database_url, tmp_path, AUDITLOG_CPU_AFFINITY=str(cpu)), tmp_path / "serve.log"
    )
    assert running.exit_code() == 2
    last_line = running.output().strip().splitlines()[-1]
    assert last_line.startswith(
        f"auditlog: configuration error: AUDITLOG_CPU_AFFINITY: CPU {cpu} not available"
    )


def thread_cpus(pid: int) -> set[frozenset[int]]:
    """The distinct CPU sets of pid's threads."""
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        status = (task / "status").read_text()
        listed = re.search(r"^Cpus_allowed_list:\s*(\S+)$", status, re.MULTILINE)
        assert listed is not None
        cpus: set[int] = set()
        for part in listed.group(1).split(","):
            low, _, high = part.partition("-")
            cpus.update(range(int(low), int(high or low) + 1))
        found.add(frozenset(cpus))
    return found


@pytest.fixture
def pinned_serve(request: pytest.FixtureRequest, database_url: str, tmp_path: Path) -> Iterator[Serve]:
    workers, affinity = request.param
    env = serve_env(database_url, tmp_path, AUDITLOG_WORKERS=workers, AUDITLOG_CPU_AFFINITY=affinity)
    running = start_serve(env, tmp_path / "serve.log")
    try:
        running.wait_ready()
        yield running
    finally:
        if running.process.poll() is None:
            running.process.send_signal(signal.SIGTERM)
            if running.exit_code() != 0:
                pytest.fail(running.output())


def call_it(serve: Serve) -> None:
    """Enough concurrent work to start request threads after the pinning."""
    with AuditClient(f"127.0.0.1:{serve.grpc_port}") as client:
        client.append_events(
            [event_input(event_type="cpu.pin", action="a", resource_id=str(i)) for i in range(50)]
        )
        for i in range(5):
            client.create_event(event_type="cpu.pin", action="c", resource_id=str(i))
        assert client.verify_chain(verify_all=True).valid


LAST = str(max(os.sched_getaffinity(0)))


@pytest.mark.parametrize("pinned_serve", [("1", LAST)], indirect=True)
def test_one_server_process_is_pinned_and_envoy_is_not(pinned_serve: Serve) -> None:
    assert f"; gRPC server pinned to CPU {LAST}" in pinned_serve.output()
    call_it(pinned_serve)
    assert thread_cpus(pinned_serve.process.pid) == {frozenset({int(LAST)})}
    assert thread_cpus(pinned_serve.envoy_pid) == {frozenset(os.sched_getaffinity(0))}


@pytest.mark.parametrize("pinned_serve", [("2", "auto")], indirect=True)
def test_auto_puts_each_worker_on_its_own_cpu_in_turn(pinned_serve: Serve) -> None:
    match = WORKERS.search(pinned_serve.output())
    assert match is not None, pinned_serve.output()
    pids = [int(pid) for pid in match.group(2).split(", ")]
    available = tuple(sorted(os.sched_getaffinity(0)))
    expected = [cpu_for(available, number) for number in (1, 2)]
    assert f"; pinned to CPUs {expected[0]}, {expected[1]}" in pinned_serve.output()
    for _ in range(4):  # new connections: the kernel spreads them over both workers
        call_it(pinned_serve)
    for pid, cpu in zip(pids, expected, strict=True):
        assert thread_cpus(pid) == {frozenset({cpu})}
    unpinned = {frozenset(os.sched_getaffinity(0))}
    assert thread_cpus(pinned_serve.process.pid) == unpinned  # the supervisor
    assert thread_cpus(pinned_serve.envoy_pid) == unpinned
    assert all(alive(pid) for pid in pids)


def test_a_settled_server_process_has_the_tuned_garbage_collector() -> None:
    """In a process of its own: settling freezes and re-tunes this interpreter's collector."""
    code = (
        "import gc; from auditlog.tuning import settle_server_process;"
        "print(settle_server_process((), 1), gc.get_threshold(), gc.get_freeze_count() > 0)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split(None, 1) == ["None", f"{GC_THRESHOLDS} True\n"]
