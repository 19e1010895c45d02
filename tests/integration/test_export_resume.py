"""Jobs survive restarts: pending and abandoned running jobs run again, stay within their snapshot,
and a job that keeps dying with its server ends failed rather than running forever."""

from __future__ import annotations

import json
import time

import grpc
import psycopg

from audit.v1 import export_service_pb2
from auditlog.export.runner import RunnerSettings
from tests.fix_export import (
    ServiceFactory,
    append_events,
    create_export,
    download_content,
    export_stub,
    load_events_directly,
    sample_inputs,
    wait_for_job,
)

IDLE = RunnerSettings(workers=0)  # a server whose runner takes no jobs: jobs stay pending


def test_pending_job_runs_after_restart_and_exports_its_snapshot_only(start_service: ServiceFactory) -> None:
    first = start_service(settings=IDLE)
    with grpc.insecure_channel(f"127.0.0.1:{first.port}") as channel:
        append_events(channel, sample_inputs(10))
        job = create_export(channel, "json")
        later = sample_inputs(15)[10:]
        for message in later:
            message.request_id += "-later"
        append_events(channel, later)  # recorded after the job was created
    first.stop()
    assert job.status == "pending" and job.max_sequence == 9

    second = start_service()
    with grpc.insecure_channel(f"127.0.0.1:{second.port}") as channel:
        done = wait_for_job(channel, job.id)
        assert done.status == "completed" and done.rows_written == 10
        data, _, _ = download_content(channel, job.id)
    assert [e["sequence"] for e in json.loads(data)["events"]] == list(range(10))


def _abandon(database_url: str, job_id: str, attempts: int) -> None:
    """Makes the job look like one a crashed server was running an hour ago."""
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "UPDATE export_jobs SET status = 'running', attempts = %s, started_at = now() - interval '1 hour',"
            " heartbeat_at = now() - interval '1 hour' WHERE id = %s",
            (attempts, job_id),
        )


def test_job_abandoned_by_a_crashed_server_runs_again(
    start_service: ServiceFactory, database_url: str
) -> None:
    first = start_service(settings=IDLE)
    with grpc.insecure_channel(f"127.0.0.1:{first.port}") as channel:
        append_events(channel, sample_inputs(4))
        job = create_export(channel, "csv")
    first.stop()
    _abandon(database_url, job.id, attempts=1)

    second = start_service()
    with grpc.insecure_channel(f"127.0.0.1:{second.port}") as channel:
        done = wait_for_job(channel, job.id)
    assert done.status == "completed" and done.rows_written == 4
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT attempts FROM export_jobs WHERE id = %s", (job.id,)).fetchone()
    assert row == (2,)


def test_job_that_keeps_dying_with_its_server_ends_failed(
    start_service: ServiceFactory, database_url: str
) -> None:
    first = start_service(settings=IDLE)
    with grpc.insecure_channel(f"127.0.0.1:{first.port}") as channel:
        job = create_export(channel, "xlsx")
    first.stop()
    _abandon(database_url, job.id, attempts=RunnerSettings().max_attempts)

    second = start_service()
    with grpc.insecure_channel(f"127.0.0.1:{second.port}") as channel:
        done = wait_for_job(channel, job.id)
    assert done.status == "failed"
    assert done.error == "the server stopped while running this job 3 times; giving up"


def test_running_job_with_a_live_heartbeat_is_left_alone(
    start_service: ServiceFactory, database_url: str
) -> None:
    first = start_service(settings=IDLE)
    with grpc.insecure_channel(f"127.0.0.1:{first.port}") as channel:
        job = create_export(channel, "csv")
        # Another process runs it and has just reported in.
        with psycopg.connect(database_url) as conn:
            conn.execute(
                "UPDATE export_jobs SET status = 'running', attempts = 1, heartbeat_at = now() WHERE id = %s",
                (job.id,),
            )
    first.stop()
    second = start_service()
    with grpc.insecure_channel(f"127.0.0.1:{second.port}") as channel:
        time.sleep(1.0)  # a few keeper rounds
        still = export_stub(channel).GetExport(export_service_pb2.GetExportRequest(id=job.id))
    assert still.status == "running"


def test_stop_mid_export_returns_the_job_to_pending_and_restart_finishes_it(
    start_service: ServiceFactory, database_url: str
) -> None:
    first = start_service()
    load_events_directly(database_url, 10_000)  # XLSX writes a few thousand rows a second
    with grpc.insecure_channel(f"127.0.0.1:{first.port}") as channel:
        job = create_export(channel, "xlsx")
        deadline = time.monotonic() + 30
        while (
            export_stub(channel).GetExport(export_service_pb2.GetExportRequest(id=job.id)).status != "running"
        ):
            assert time.monotonic() < deadline
            time.sleep(0.01)
    first.stop()
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT status, attempts FROM export_jobs WHERE id = %s", (job.id,)).fetchone()
    assert row == ("pending", 0)  # an interrupted run does not count as an attempt

    second = start_service()
    with grpc.insecure_channel(f"127.0.0.1:{second.port}") as channel:
        done = wait_for_job(channel, job.id)
    assert done.status == "completed" and done.rows_written == 10_000
