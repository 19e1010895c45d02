"""NDJSON and OCSF exports end to end, through AuditClient's create, wait and download."""

from __future__ import annotations

import json

import grpc

from auditlog_client import AuditClient
from tests.fix_export import append_events, event_fields, sample_inputs


def test_ndjson_and_ocsf_exports_hold_every_event_one_per_line(export_channel: grpc.Channel) -> None:
    events = append_events(export_channel, sample_inputs(30))
    client = AuditClient("unused", channel=export_channel)
    seen_progress: list[str] = []
    for export_format in ("ndjson", "ocsf"):
        job = client.create_export(job_name="SIEM feed", export_format=export_format, requested_by="tester")
        done = client.wait_export(
            job.id, timeout=60, interval=0.05, on_progress=lambda j: seen_progress.append(j.status)
        )
        assert done.status == "completed", done.error
        body = b"".join(client.download_export(job.id)).decode("utf-8")
        lines = [json.loads(line) for line in body.splitlines()]
        assert len(lines) == len(events) == done.rows_written
        if export_format == "ndjson":
            assert lines == [event_fields(e) for e in events]
        else:
            assert [line["metadata"]["sequence"] for line in lines] == [e.sequence for e in events]
            assert [line["unmapped"]["auditlog"]["chain_hash"] for line in lines] == [
                e.chain_hash for e in events
            ]
            # The fixture's PUBLIC_BASE_URL is http://gateway.test:8000.
            assert {line["metadata"]["log_name"] for line in lines} == {"gateway.test:8000"}
            assert {line["class_uid"] for line in lines} == {3002, 6003}
    assert seen_progress[-1] == "completed"
