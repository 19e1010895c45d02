"""Concurrent appends from many threads in several server processes form one gapless chain."""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor

import pytest

from auditlog_client import AuditClient
from tests.server_process import ServerProcess

THREADS_PER_PROCESS = 16
EVENTS_PER_THREAD = 25


@pytest.mark.slow
def test_sixteen_threads_in_each_of_two_processes_build_one_chain(database_url: str) -> None:
    servers = [ServerProcess(database_url) for _ in range(2)]
    try:

        def append(worker: int) -> list[int]:
            server = servers[worker % 2]
            with AuditClient(f"127.0.0.1:{server.port}") as client:
                return [
                    client.create_event(
                        event_type="load.test", action="append", user_id=f"w{worker}", resource_id=str(i)
                    ).sequence
                    for i in range(EVENTS_PER_THREAD)
                ]

        workers = THREADS_PER_PROCESS * 2
        with ThreadPoolExecutor(max_workers=workers) as pool:
            sequences = [s for result in pool.map(append, range(workers)) for s in result]

        total = workers * EVENTS_PER_THREAD
        assert sorted(sequences) == list(range(total))
        with AuditClient(f"127.0.0.1:{servers[1].port}") as client:
            result = client.verify_chain(verify_all=True)
            assert result.valid, result.message
            assert result.events_checked == total
            events = list(client.search_events())
        assert [e.sequence for e in events] == list(range(total))
        for before, after in itertools.pairwise(events):
            assert after.prev_hash == before.chain_hash
            assert after.recorded_at.ToDatetime() >= before.recorded_at.ToDatetime()
    finally:
        codes = [server.stop() for server in servers]
    assert codes == [0, 0]


def test_concurrent_retries_of_one_request_id_record_it_once(client: AuditClient) -> None:
    def create(_: int) -> str:
        return client.create_event(event_type="pay.charge", action="charge", request_id="charge-7").id

    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = set(pool.map(create, range(32)))
    assert len(ids) == 1
    assert client.get_stats().total_events == 1
