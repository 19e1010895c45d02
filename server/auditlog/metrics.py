"""Prometheus metrics, aggregated over every gRPC server process (`AUDITLOG_METRICS`, default on).

Each server process writes its values to memory-mapped files in one directory (prometheus-client's
multiprocess mode); `auditlog serve` empties that directory at start (`prepare_directory`), and its
`/metrics` endpoint (`serve_metrics`, on loopback; Envoy routes `GET /metrics` there) merges the
files of all of them at each scrape. A process writes values only after `enable`: without it every
hook here is a no-op.

Per call the cost is one counter and one histogram update (`rpc_observer`); per sequencer batch a
few more. Pool and export-job figures are sampled every few seconds (`Sampler`), and ages are
computed when scraped (`_DerivedCollector`).
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIServer

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess, values
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import start_http_server
from prometheus_client.registry import Collector
from psycopg_pool import ConnectionPool

from auditlog.config import publish_metrics_directory

_log = logging.getLogger(__name__)
SAMPLE_SECONDS = 5.0
# Seconds; from a cached GetEvent to a slow export or verification.
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_CHECKPOINT_NAMES = ("auditlog_checkpoint_size", "auditlog_checkpoint_timestamp_seconds")
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000, 4000, 16000)


class _Metrics:
    """Every metric a server process writes (made once per process, by `enable`)."""

    def __init__(self) -> None:
        self.handled = Counter(
            "grpc_server_handled",
            "RPCs completed, by method and status code.",
            ["grpc_service", "grpc_method", "grpc_code"],
            registry=None,
        )
        self.handling = Histogram(
            "grpc_server_handling_seconds",
            "RPC duration in seconds (a stream: until its last message), by method and status code.",
            ["grpc_service", "grpc_method", "grpc_code"],
            buckets=_LATENCY_BUCKETS,
            registry=None,
        )
        self.batch_events = Histogram(
            "auditlog_sequencer_batch_events",
            "Events per sequencer batch (one transaction).",
            buckets=_BATCH_BUCKETS,
            registry=None,
        )
        self.queue_depth = Gauge(
            "auditlog_sequencer_queue_depth",
            "Appends waiting for the sequencer when its last batch started, summed over processes.",
            multiprocess_mode="livesum",
            registry=None,
        )
        self.append_seconds = Histogram(
            "auditlog_append_seconds",
            "From an append's hand-over to the sequencer until its batch committed.",
            buckets=_LATENCY_BUCKETS,
            registry=None,
        )
        self.commit_seconds = Histogram(
            "auditlog_commit_seconds",
            "Writing and committing one sequencer batch.",
            buckets=_LATENCY_BUCKETS,
            registry=None,
        )
        self.head = Gauge(
            "auditlog_head_sequence",
            "Sequence of the newest committed event (-1: empty log).",
            multiprocess_mode="max",
            registry=None,
        )
        self.verification_valid = Gauge(
            "auditlog_last_verification_valid",
            "1 when the newest verification found the chain intact, 0 when broken; scope: whole log or a range.",
            ["scope"],
            multiprocess_mode="mostrecent",
            registry=None,
        )
        self.verification_time = Gauge(
            "auditlog_last_verification_timestamp_seconds",
            "When the newest verification ran (Unix time).",
            ["scope"],
            multiprocess_mode="mostrecent",
            registry=None,
        )
        self.checkpoint_size = Gauge(
            "auditlog_checkpoint_size",
            "Tree size of the newest signed checkpoint.",
            multiprocess_mode="max",
            registry=None,
        )
        self.checkpoint_time = Gauge(
            "auditlog_checkpoint_timestamp_seconds",
            "When the newest checkpoint was signed (Unix time).",
            multiprocess_mode="max",
            registry=None,
        )
        self.export_jobs = Gauge(
            "auditlog_export_jobs",
            "Export jobs on the database, by state (sampled).",
            ["state"],
            multiprocess_mode="mostrecent",
            registry=None,
        )
        self.pool_waits = Counter(
            "auditlog_db_pool_waits",
            "Connection requests that had to wait for a free pooled connection.",
            registry=None,
        )
        self.pool_wait_seconds = Counter(
            "auditlog_db_pool_wait_seconds",
            "Time connection requests spent waiting for a pooled connection.",
            registry=None,
        )
        self.pool_errors = Counter(
            "auditlog_db_pool_errors",
            "Connection requests that failed (timed out or the pool was closed).",
            registry=None,
        )
        self.pool_waiting = Gauge(
            "auditlog_db_pool_requests_waiting",
            "Connection requests waiting now (sampled), summed over processes.",
            multiprocess_mode="livesum",
            registry=None,
        )
        self.pool_size = Gauge(
            "auditlog_db_pool_connections",
            "Pooled PostgreSQL connections (sampled), summed over processes.",
            multiprocess_mode="livesum",
            registry=None,
        )


_metrics: _Metrics | None = None
_enable_lock = threading.Lock()


def enable(directory: Path) -> None:
    """Makes this process write its metrics to directory (prepared by `prepare_directory`)."""
    global _metrics
    with _enable_lock:
        publish_metrics_directory(directory)
        if _metrics is None:
            values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
            _metrics = _Metrics()


def enabled() -> bool:
    return _metrics is not None


def directory_for(data_dir: Path) -> Path:
    """The metric files of the service whose data directory is data_dir."""
    return data_dir / "metrics"


def prepare_directory(data_dir: Path) -> Path:
    """An empty metrics directory under data_dir (values of an earlier run removed)."""
    directory = directory_for(data_dir)
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _noop(*args: Any) -> None:
    return None


def rpc_observer(method: str) -> Callable[[grpc.ServicerContext, float], None]:
    """For one method (`/package.Service/Method`, or a bare name): a function recording a finished
    call from its context (whose status code is set once it failed) and its start (time.monotonic);
    a no-op while metrics are off."""
    metrics = _metrics
    if metrics is None:
        return _noop
    service, _, name = method.lstrip("/").rpartition("/")
    children: dict[Any, tuple[Any, Any]] = {}

    def observe(context: grpc.ServicerContext, started: float) -> None:
        elapsed = time.monotonic() - started
        try:
            code = context.code()
        except NotImplementedError:  # grpc_testing's context keeps no code
            code = None
        pair = children.get(code)
        if pair is None:
            label = "OK" if code is None else getattr(code, "name", str(code))
            pair = children[code] = (
                metrics.handled.labels(service, name, label),
                metrics.handling.labels(service, name, label),
            )
        pair[0].inc()
        pair[1].observe(elapsed)

    return observe


def batch_started(events: int, waiting: int) -> None:
    """A sequencer batch of events began; waiting appends are still queued behind it."""
    metrics = _metrics
    if metrics is not None:
        metrics.batch_events.observe(events)
        metrics.queue_depth.set(waiting)


def batch_committed(head_sequence: int, seconds: float) -> None:
    metrics = _metrics
    if metrics is not None:
        metrics.commit_seconds.observe(seconds)
        metrics.head.set(head_sequence)


def append_finished(seconds: float) -> None:
    metrics = _metrics
    if metrics is not None:
        metrics.append_seconds.observe(seconds)


def head_known(sequence: int) -> None:
    """The head as read at start (before any batch of this process)."""
    metrics = _metrics
    if metrics is not None:
        metrics.head.set(sequence)


def verification_recorded(valid: bool, whole: bool, at: float) -> None:
    """A verification finished: valid or not, of the whole log or a range, at Unix time at."""
    metrics = _metrics
    if metrics is not None:
        scope = "whole" if whole else "range"
        metrics.verification_valid.labels(scope).set(1 if valid else 0)
        metrics.verification_time.labels(scope).set(at)


def checkpoint_signed(size: int, at: float) -> None:
    """The hook for signed checkpoints: tree size and Unix time of the newest one. The scrape then
    reports `auditlog_checkpoint_lag_events` (head sequence + 1 - size) and its age."""
    metrics = _metrics
    if metrics is not None:
        metrics.checkpoint_size.set(size)
        metrics.checkpoint_time.set(at)


class Sampler:
    """Every SAMPLE_SECONDS: the connection pool's statistics and the export jobs by state."""

    def __init__(self, pool: ConnectionPool, interval: float = SAMPLE_SECONDS) -> None:
        self._pool = pool
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="metrics-sampler", daemon=True)
        self._seen: dict[str, int] = {}

    def start(self) -> None:
        if _metrics is not None:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.sample()
            except Exception as err:  # noqa: BLE001 - a failed sample must not end the sampling
                _log.debug("metrics sample failed: %s", type(err).__name__)

    def sample(self) -> None:
        metrics = _metrics
        if metrics is None:
            return
        stats = self._pool.get_stats()
        for key, counter, scale in (
            ("requests_queued", metrics.pool_waits, 1.0),
            ("requests_wait_ms", metrics.pool_wait_seconds, 0.001),
            ("requests_errors", metrics.pool_errors, 1.0),
        ):
            now = stats.get(key, 0)
            grown = now - self._seen.get(key, 0)
            if grown > 0:
                counter.inc(grown * scale)
            self._seen[key] = now
        metrics.pool_waiting.set(stats.get("requests_waiting", 0))
        metrics.pool_size.set(stats.get("pool_size", 0))
        with self._pool.connection(timeout=2) as conn:
            counts: dict[str, int] = dict(
                conn.execute("SELECT status, count(*) FROM export_jobs GROUP BY status").fetchall()
            )
        for state in ("pending", "running", "completed", "failed"):
            metrics.export_jobs.labels(state).set(counts.get(state, 0))


class _DerivedCollector(Collector):
    """The processes' metrics merged, plus what depends on the time of the scrape."""

    def __init__(self, directory: Path) -> None:
        self._merged = multiprocess.MultiProcessCollector(None, path=str(directory))  # type: ignore[no-untyped-call]

    def collect(self) -> Iterator[Metric]:
        now = time.time()
        families = list(self._merged.collect())  # type: ignore[no-untyped-call]
        found = {
            sample.name: sample.value
            for family in families
            for sample in family.samples
            if sample.name in _CHECKPOINT_NAMES or sample.name == "auditlog_head_sequence"
        }
        # Until a checkpoint is signed its gauges read 0: none is reported rather than a false lag.
        signed = found.get("auditlog_checkpoint_timestamp_seconds", 0) > 0
        age = GaugeMetricFamily(
            "auditlog_last_verification_age_seconds",
            "Seconds since the newest verification ran.",
            labels=["scope"],
        )
        for family in families:
            if family.name in _CHECKPOINT_NAMES and not signed:
                continue
            if family.name == "auditlog_last_verification_timestamp_seconds":
                for sample in family.samples:
                    age.add_metric([sample.labels.get("scope", "")], max(0.0, now - sample.value))
            yield family
        yield age
        if signed:
            yield GaugeMetricFamily(
                "auditlog_checkpoint_lag_events",
                "Events committed but not yet in a signed checkpoint.",
                value=max(
                    0.0,
                    found.get("auditlog_head_sequence", -1) + 1 - found.get("auditlog_checkpoint_size", 0),
                ),
            )
            yield GaugeMetricFamily(
                "auditlog_checkpoint_age_seconds",
                "Seconds since the newest checkpoint was signed.",
                value=max(0.0, now - found["auditlog_checkpoint_timestamp_seconds"]),
            )


def serve_metrics(directory: Path, host: str = "127.0.0.1") -> WSGIServer:
    """An HTTP server on host (a free port: `.server_port`) answering every GET with the merged
    metrics of directory; `.shutdown()` stops it."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_DerivedCollector(directory))
    server, _ = start_http_server(0, addr=host, registry=registry)
    return server
