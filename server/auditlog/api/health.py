"""Health: the standard grpc.health.v1 service following database reachability, and the small
audit.v1.HealthService behind the REST paths /health, /health/ready and /health/live."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

import grpc
from grpc_health.v1 import health, health_pb2

import auditlog
from audit.v1 import health_service_pb2 as pb
from audit.v1 import health_service_pb2_grpc
from auditlog.errors import ShuttingDownError, UnavailableError

_log = logging.getLogger(__name__)


def _no_problem() -> str | None:
    return None


class DatabaseMonitor:
    """Pings the database every interval and sets every served name SERVING or NOT_SERVING.

    problem: why the service cannot serve although the database answers (appends stopped), or None.
    on_recovered: runs when the database is reachable again after an outage.
    """

    def __init__(
        self,
        ping: Callable[[], None],
        health_servicer: health.HealthServicer,
        service_names: Iterable[str],
        interval: float = 1.0,
        problem: Callable[[], str | None] = _no_problem,
        on_recovered: Callable[[], None] | None = None,
    ) -> None:
        self._ping = ping
        self._problem = problem
        self._reported_problem: str | None = None
        self._on_recovered = on_recovered
        self._health = health_servicer
        self._names = ["", *service_names]
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="db-monitor", daemon=True)
        self.reachable = False
        self._published = False

    def start(self) -> None:
        self.check()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def check(self) -> bool:
        try:
            self._ping()
            reachable = True
        except Exception as err:  # noqa: BLE001 - any failure means unreachable
            reachable = False
            if self.reachable:
                _log.warning("database unreachable: %s", err.__class__.__name__)
        problem = self._problem_or_none() if reachable else self._reported_problem
        if problem != self._reported_problem:
            if problem is not None:
                _log.warning("not serving: %s", problem)
            else:
                _log.info("appends are no longer stopped")
        changed = reachable != self.reachable or problem != self._reported_problem or not self._published
        if reachable and not self.reachable:
            _log.info("database reachable")
            if self._published and self._on_recovered is not None:
                self._on_recovered()
        self.reachable = reachable
        self._reported_problem = problem
        # Publish changes only: every set() wakes each Watch stream with a message.
        if changed and not self._stop.is_set():
            status = (
                health_pb2.HealthCheckResponse.SERVING
                if reachable and problem is None
                else health_pb2.HealthCheckResponse.NOT_SERVING
            )
            for name in self._names:
                self._health.set(name, status)
            self._published = True
        return reachable

    def _problem_or_none(self) -> str | None:
        try:
            return self._problem()
        except Exception as err:  # noqa: BLE001 - the next ping tells an unreachable database
            _log.warning("could not check the log's tail: %s", err.__class__.__name__)
            return self._reported_problem

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.check()


class HealthServicer(health_service_pb2_grpc.HealthServiceServicer):
    def __init__(
        self,
        ping: Callable[[], None],
        shutting_down: threading.Event,
        problem: Callable[[], str | None] = _no_problem,
    ) -> None:
        self._ping = ping
        self._shutting_down = shutting_down
        self._problem = problem

    def Check(self, request: pb.CheckRequest, context: grpc.ServicerContext) -> pb.CheckResponse:
        return pb.CheckResponse(status="ok", service="auditlog", version=auditlog.__version__)

    def Ready(self, request: pb.ReadyRequest, context: grpc.ServicerContext) -> pb.ReadyResponse:
        if self._shutting_down.is_set():
            raise ShuttingDownError("not ready: the server is shutting down")
        try:
            self._ping()
        except UnavailableError as err:
            raise UnavailableError("not ready: the database is unreachable") from err
        problem = self._problem()
        if problem is not None:
            raise UnavailableError(f"not ready: {problem}")
        return pb.ReadyResponse(status="ready", database="ok")

    def Live(self, request: pb.LiveRequest, context: grpc.ServicerContext) -> pb.LiveResponse:
        if self._shutting_down.is_set():
            raise ShuttingDownError("the server is shutting down")
        return pb.LiveResponse(status="alive")
