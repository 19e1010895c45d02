"""OCSF and NDJSON exports: every record validates against the OCSF 1.3.0 JSON schema of its class
(generated from the schema packaged by ocsf-json-schema), the documented class and activity per
event_type, and each record carries what proves it (sequence, hashes, origin)."""

from __future__ import annotations

import functools
import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import rfc8785
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema

from auditlog.domain.canonical import ZERO_HASH
from auditlog.domain.chain import build_record
from auditlog.domain.event import EventRecord, NewEvent
from auditlog.export.fields import event_object
from auditlog.export.writers import ExportMetadata, open_writer
from auditlog_client.ocsf import OCSF_VERSION, to_ocsf

T0 = datetime(2024, 1, 1, tzinfo=UTC)
ORIGIN = "audit.example.com/log"


@functools.cache
def validator(class_uid: int) -> jsonschema.Draft202012Validator:
    schema = OcsfJsonSchemaEmbedded(get_ocsf_schema(version=OCSF_VERSION))
    name = schema.lookup_class_name_from_uid(class_uid=class_uid)
    return jsonschema.Draft202012Validator(schema.get_class_schema(class_name=name, profiles=[]))


def chain(events: list[NewEvent]) -> list[EventRecord]:
    out: list[EventRecord] = []
    prev = ZERO_HASH
    for i, event in enumerate(events):
        record = build_record(
            event, sequence=i, recorded_at=T0 + timedelta(seconds=i), prev=prev, event_id=uuid.uuid4()
        )
        out.append(record)
        prev = record.chain_hash
    return out


def export_lines(export_format: str, path: Path, records: list[EventRecord]) -> list[dict[str, Any]]:
    metadata = ExportMetadata(
        job_id=uuid.uuid4(),
        job_name="Unit",
        export_format=export_format,
        requested_by="tester",
        created_at=T0,
        filters={},
        max_sequence=len(records) - 1,
        row_count=len(records),
        first_sequence=0,
        last_sequence=len(records) - 1,
        last_chain_hash=records[-1].chain_hash.hex(),
    )
    writer = open_writer(export_format, path, metadata, origin=ORIGIN)
    for record in records:
        writer.write(record)
    writer.finish()
    text = path.read_text(encoding="utf-8")
    # One record per line for any reader: no line-breaking character of Unicode inside a record.
    assert text.endswith("\n") and len(text.splitlines()) == len(records)
    return [json.loads(line) for line in text.splitlines()]


def problems(record: dict[str, Any]) -> list[str]:
    return [f"{list(e.path)}: {e.message}" for e in validator(record["class_uid"]).iter_errors(record)]


PREFIXED = st.builds(
    lambda prefix, rest: prefix + rest,
    st.sampled_from(["user.login", "user.logout", "auth.", "session.", "user.", "account.", "doc.", ""]),
    st.text(max_size=20),
)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.builds(
            NewEvent,
            event_type=PREFIXED,
            action=st.text(max_size=20),
            user_id=st.sampled_from(["", "user123"]),
            details=st.dictionaries(
                st.text(max_size=5), st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=5), max_size=3
            ),
            risk_level=st.sampled_from(["", "low", "medium", "high", "critical"]),
            ip_address=st.sampled_from(["", "10.0.0.1", "2001:db8::1"]),
            session_id=st.sampled_from(["", "s1"]),
            user_agent=st.sampled_from(["", "curl/8"]),
            resource_id=st.sampled_from(["", "r1"]),
        ),
        min_size=1,
        max_size=5,
    )
)
def test_every_ocsf_record_validates_against_its_class_schema(tmp_path: Path, events: list[NewEvent]) -> None:
    records = chain(events)
    for line, record in zip(export_lines("ocsf", tmp_path / "x.ocsf.ndjson", records), records, strict=True):
        assert problems(line) == []
        assert line["metadata"]["sequence"] == record.sequence
        assert line["metadata"]["uid"] == str(record.id)
        assert line["metadata"]["log_name"] == ORIGIN
        proof = line["unmapped"]["auditlog"]
        assert proof["chain_hash"] == record.chain_hash.hex()
        assert proof["leaf_hash"] == record.leaf_hash.hex()
        assert proof["origin"] == ORIGIN


def test_the_record_proves_itself_from_its_own_fields(tmp_path: Path) -> None:
    records = chain([NewEvent(event_type="user.login", action="successful_login", details={"n": 1})] * 3)
    for line in export_lines("ocsf", tmp_path / "x.ocsf.ndjson", records):
        proof = line["unmapped"]["auditlog"]
        hashed = {
            k: v
            for k, v in proof["event"].items()
            if k not in ("leaf_hash", "prev_hash", "chain_hash", "canonical_version")
        }
        leaf = hashlib.sha256(b"\x00" + rfc8785.dumps(hashed)).hexdigest()
        assert leaf == proof["leaf_hash"]
        assert (
            hashlib.sha256(bytes.fromhex(proof["prev_hash"]) + bytes.fromhex(leaf)).hexdigest()
            == proof["chain_hash"]
        )


@pytest.mark.parametrize(
    ("event_type", "action", "class_uid", "activity_id", "status_id"),
    [
        ("user.login", "successful_login", 3002, 1, 1),
        ("user.login", "failed_login", 3002, 1, 2),
        ("auth.logout", "logout", 3002, 2, None),
        ("user.created", "create", 3001, 1, None),
        ("role.grant", "grant", 3001, 7, None),
        ("document.read", "view", 6003, 2, None),
        ("invoice.update", "edit", 6003, 3, None),
        ("payment.refund", "refund", 6003, 99, None),
    ],
)
def test_class_and_activity_follow_the_documented_mapping(
    event_type: str, action: str, class_uid: int, activity_id: int, status_id: int | None
) -> None:
    (record,) = chain([NewEvent(event_type=event_type, action=action, risk_level="high")])
    line = to_ocsf(event_object(record), ORIGIN)
    assert (line["class_uid"], line["activity_id"], line.get("status_id")) == (
        class_uid,
        activity_id,
        status_id,
    )
    assert line["type_uid"] == class_uid * 100 + activity_id
    assert line["severity_id"] == 4
    assert problems(line) == []


def test_ndjson_export_is_one_event_object_per_line(tmp_path: Path) -> None:
    records = chain([NewEvent(event_type="t", action=f"a{i}", details={"i": i}) for i in range(4)])
    lines = export_lines("ndjson", tmp_path / "x.ndjson", records)
    assert lines == [event_object(record) for record in records]
