"""GET /metrics through Envoy: Prometheus text with the counts of the traffic sent, merged over
every gRPC worker process of `auditlog serve`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from auditlog_client import AuditClient
from auditlog_client.errors import NotFound
from tests.fix_serve import WORKERS, Serve, serve_env, start_serve, wait_until

CLIENTS = 12
EVENTS_EACH = 5
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def started(database_url: str, tmp_path: Path) -> Iterator[Serve]:
    serve = start_serve(serve_env(database_url, tmp_path, AUDITLOG_WORKERS="2"), tmp_path / "serve.log")
    try:
        serve.wait_ready()
        yield serve
    finally:
        serve.process.terminate()
        serve.process.wait(30)


def scrape(http_port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=10) as reply:
        assert reply.status == 200
        assert reply.headers["content-type"].startswith("text/plain")
        text = reply.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def rpc(method: str, code: str) -> dict[str, str]:
    service, name = method.split("/")
    return {"grpc_service": service, "grpc_method": name, "grpc_code": code}


def test_metrics_count_the_traffic_of_both_workers_through_envoy(started: Serve, tmp_path: Path) -> None:
    target = f"127.0.0.1:{started.grpc_port}"
    with ExitStack() as stack:
        # A channel each with a connection of its own: the kernel spreads them over the workers.
        clients = [
            stack.enter_context(
                AuditClient(
                    "", channel=grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
                )
            )
            for _ in range(CLIENTS)
        ]

        def create(client: AuditClient) -> list[int]:
            return [
                client.create_event(event_type="metrics.test", action="create").sequence
                for _ in range(EVENTS_EACH)
            ]

        with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
            sequences = [s for found in pool.map(create, clients) for s in found]
        for _ in range(3):
            with pytest.raises(NotFound):
                clients[0].get_event(str(uuid.uuid4()))
        assert clients[1].verify_chain(verify_all=True).valid

    sent = CLIENTS * EVENTS_EACH
    samples = scrape(started.http_port)
    create_ok = rpc("audit.v1.AuditService/CreateEvent", "OK")
    assert value(samples, "grpc_server_handled_total", **create_ok) == sent
    assert value(samples, "grpc_server_handling_seconds_count", **create_ok) == sent
    assert (
        value(samples, "grpc_server_handled_total", **rpc("audit.v1.AuditService/GetEvent", "NOT_FOUND")) == 3
    )
    assert value(samples, "grpc_server_handled_total", **rpc("audit.v1.AuditService/VerifyChain", "OK")) == 1
    assert value(samples, "auditlog_sequencer_batch_events_sum") == sent
    assert value(samples, "auditlog_append_seconds_count") == sent
    assert value(samples, "auditlog_head_sequence") == max(sequences)
    assert value(samples, "auditlog_last_verification_valid", scope="whole") == 1
    age = value(samples, "auditlog_last_verification_age_seconds", scope="whole")
    assert age is not None and 0 <= age < 60

    # Both workers wrote values of their own (files named after their pids), and the sums above
    # hold their values together.
    match = WORKERS.search(started.output())
    assert match is not None
    pids = {int(pid) for pid in match.group(2).split(", ")}
    writers = {
        int(m.group(1))
        for f in (tmp_path / "data" / "metrics").iterdir()
        if (m := re.search(r"_(\d+)\.db$", f.name))
    }
    assert pids <= writers

    # Sampled every few seconds: the pool of each worker, and the export jobs on the database.
    def sampled() -> bool:
        nonlocal samples
        samples = scrape(started.http_port)
        return value(samples, "auditlog_export_jobs", state="pending") is not None

    wait_until(sampled, timeout=30)
    assert value(samples, "auditlog_export_jobs", state="pending") == 0

    # A checkpoint covering the whole log is signed within the interval (1 s), by one worker.
    def checkpointed() -> bool:
        nonlocal samples
        samples = scrape(started.http_port)
        return value(samples, "auditlog_checkpoint_size") == max(sequences) + 1

    wait_until(checkpointed, timeout=30)
    assert value(samples, "auditlog_checkpoint_lag_events") == 0
    connections = value(samples, "auditlog_db_pool_connections")
    assert connections is not None and connections >= 2

    # The dashboard in docs/ asks only for what the service serves.
    dashboard = json.loads((Path(__file__).parents[2] / "docs" / "grafana-dashboard.json").read_text())
    asked = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\b(?:auditlog|grpc_server)_[a-z_]+", target["expr"])
    }
    served = {name for name, _ in samples}
    assert asked <= served, asked - served


def test_metrics_off_leaves_no_metrics_route(database_url: str, tmp_path: Path) -> None:
    serve = start_serve(serve_env(database_url, tmp_path, AUDITLOG_METRICS="off"), tmp_path / "serve.log")
    try:
        serve.wait_ready()
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{serve.http_port}/metrics", timeout=10)
        refused.value.close()
        assert refused.value.code == 404
        assert not (tmp_path / "data" / "metrics").exists()
    finally:
        serve.process.terminate()
        serve.process.wait(30)


CHECKPOINT_PROBE = """
import sys, time
from pathlib import Path
from prometheus_client import CollectorRegistry, generate_latest
from auditlog import metrics

directory = metrics.prepare_directory(Path(sys.argv[1]))
metrics.enable(directory)
metrics.head_known(9)
registry = CollectorRegistry()
registry.register(metrics._DerivedCollector(directory))
print(generate_latest(registry).decode())
print("----")
metrics.checkpoint_signed(5, time.time() - 10)
print(generate_latest(registry).decode())
"""


def test_checkpoint_lag_appears_once_a_checkpoint_is_signed(tmp_path: Path) -> None:
    # In a process of its own: metrics, once enabled, stay on in a process.
    done = subprocess.run(
        [sys.executable, "-c", CHECKPOINT_PROBE, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    before, after = done.stdout.split("----")
    assert "auditlog_checkpoint" not in before
    samples = {s.name: s.value for f in text_string_to_metric_families(after) for s in f.samples}
    assert samples["auditlog_head_sequence"] == 9
    assert samples["auditlog_checkpoint_size"] == 5
    assert samples["auditlog_checkpoint_lag_events"] == 5  # sequences 5..9
    assert 10 <= samples["auditlog_checkpoint_age_seconds"] < 60
