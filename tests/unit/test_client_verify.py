"""The client's own verifier (auditlog_client.verify) against the server's domain modules: what the
server proves and signs, the client accepts; what is tampered with, it refuses; an event as the
API shows it hashes to its leaf."""

from __future__ import annotations

import ast
import dataclasses
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from google.protobuf import json_format
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from auditlog.api.convert import event_to_proto
from auditlog.domain import merkle, notes
from auditlog.domain.canonical import ZERO_HASH
from auditlog.domain.chain import build_record
from auditlog.domain.event import NewEvent
from auditlog.export.fields import event_object
from auditlog_client import verify
from auditlog_client.verify import VerificationError
from tests.fix_canonical import new_events


def leaves(n: int) -> list[bytes]:
    return [merkle.hash_children(bytes([7]) * 32, i.to_bytes(32, "big")) for i in range(n)]


def flip(hashes: list[bytes], position: int) -> list[bytes]:
    out = list(hashes)
    out[position] = bytes([out[position][0] ^ 0x80]) + out[position][1:]
    return out


def test_client_accepts_every_server_proof_to_size_64_and_refuses_each_flipped_hash() -> None:
    hashes = leaves(64)
    roots = [merkle.root_from_leaves(hashes[:n]) for n in range(65)]
    for size in range(1, 65):
        for index in range(size):
            proof = merkle.inclusion_proof_from_leaves(index, hashes[:size])
            verify.check_inclusion(index, size, hashes[index], proof, roots[size])
            for position in range(len(proof)):
                with pytest.raises(VerificationError):
                    verify.check_inclusion(index, size, hashes[index], flip(proof, position), roots[size])
        for size1 in range(1, size + 1):
            proof = merkle.consistency_proof_from_leaves(size1, hashes[:size])
            verify.check_consistency(size1, roots[size1], size, roots[size], proof)
            for position in range(len(proof)):
                with pytest.raises(VerificationError):
                    verify.check_consistency(size1, roots[size1], size, roots[size], flip(proof, position))
            if size1 < size:
                with pytest.raises(VerificationError, match="a fork"):
                    verify.check_consistency(
                        size1, roots[size1 - 1] if size1 > 1 else roots[2], size, roots[size], proof
                    )


@settings(max_examples=30, deadline=None)
@given(st.integers(65, 3000), st.data())
def test_client_and_server_agree_on_larger_trees(size: int, data: st.DataObject) -> None:
    hashes = leaves(size)
    root = merkle.root_from_leaves(hashes)
    index = data.draw(st.integers(0, size - 1))
    proof = merkle.inclusion_proof_from_leaves(index, hashes)
    assert verify.root_from_inclusion(index, size, hashes[index], proof) == root
    size1 = data.draw(st.integers(1, size))
    consistency = merkle.consistency_proof_from_leaves(size1, hashes)
    verify.check_consistency(size1, merkle.root_from_leaves(hashes[:size1]), size, root, consistency)
    with pytest.raises(VerificationError, match="a rollback"):
        verify.check_consistency(size, root, size1 - 1, root, consistency)


def test_client_opens_notes_the_server_signs_and_only_those() -> None:
    signer = notes.generate_signer("log.example/a")
    key = verify.parse_verifier_key(signer.verifier_key())
    body = notes.Checkpoint("log.example/a", 9, bytes(range(32))).body()
    signed = notes.sign_note(body, [signer, notes.generate_signer("witness.example")])
    checkpoint = verify.open_checkpoint(signed, key)
    assert (checkpoint.origin, checkpoint.size, checkpoint.root) == ("log.example/a", 9, bytes(range(32)))
    with pytest.raises(VerificationError, match="does not verify"):
        verify.open_checkpoint(signed.replace("\n9\n", "\n10\n"), key)
    other = verify.parse_verifier_key(notes.generate_signer("log.example/a").verifier_key())
    with pytest.raises(VerificationError, match=r"not signed by log\.example/a"):
        verify.open_checkpoint(signed, other)
    with pytest.raises(VerificationError, match="origin"):
        renamed = notes.generate_signer("elsewhere")
        verify.open_checkpoint(
            notes.sign_note(body, [renamed]), verify.parse_verifier_key(renamed.verifier_key())
        )


def test_client_reads_the_c2sp_example_note() -> None:
    key = verify.parse_verifier_key("example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k")
    note = (
        "This is an example message.\n\n— example.com/foo "
        "Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
    )
    assert verify.open_note(note, key) == "This is an example message.\n"
    with pytest.raises(VerificationError, match="not valid Unicode"):
        verify.open_note("\ud800" + note, key)


def test_the_client_parses_the_proof_files_the_server_writes() -> None:
    signer = notes.generate_signer("log.example")
    hashes = leaves(11)
    signed = notes.sign_note(
        notes.Checkpoint("log.example", 11, merkle.root_from_leaves(hashes)).body(), [signer]
    )
    text = notes.format_tlog_proof(7, merkle.inclusion_proof_from_leaves(7, hashes), signed, extra=hashes[7])
    parsed = verify.parse_proof_file(text)
    assert (parsed.index, parsed.extra, parsed.checkpoint_note) == (7, hashes[7], signed)
    checkpoint = verify.open_checkpoint(
        parsed.checkpoint_note, verify.parse_verifier_key(signer.verifier_key())
    )
    verify.check_inclusion(7, checkpoint.size, hashes[7], parsed.proof, checkpoint.root)


# docs/integrity.md vectors 0 and 1, as the REST API shows them (proto3 JSON: sequence a string,
# timestamps without trailing zero digits, occurred_at absent when unset).
VECTOR_0 = {
    "id": "123e4567-e89b-12d3-a456-426614174000",
    "sequence": "0",
    "event_type": "user.login",
    "user_id": "user123",
    "action": "successful_login",
    "resource_type": "authentication",
    "resource_id": "session_456",
    "details": {"login_method": "password", "device_type": "web"},
    "risk_level": "low",
    "ip_address": "192.168.1.100",
    "user_agent": "Mozilla/5.0...",
    "session_id": "",
    "request_id": "",
    "recorded_at": "2024-01-01T00:00:00Z",
    "leaf_hash": "5f702b4ae6afb23e8a5aedfcc6a68b21a432abdb92dafc82fde425ab587788a8",
}
VECTOR_1 = {
    "id": "00000000-0000-4000-8000-000000000001",
    "sequence": "1",
    "event_type": "document.delete",
    "user_id": "ünïcødé",
    "action": "delete",
    "resource_type": "document",
    "resource_id": "doc-€",
    "details": {"z": [1.5, True, None, "x"], "a": {"b": 1e21, "c": -0.0}, "€": "😀"},
    "risk_level": "critical",
    "ip_address": "2001:db8::1",
    "user_agent": "",
    "session_id": "s1",
    "request_id": "req-1",
    "occurred_at": "1999-12-31T23:59:59.999999Z",
    "recorded_at": "2024-01-01T00:00:00.000001Z",
}


def test_the_integrity_vectors_as_the_api_shows_them_hash_to_their_leaves() -> None:
    assert verify.event_leaf_hash(VECTOR_0).hex() == VECTOR_0["leaf_hash"]
    assert (
        verify.event_leaf_hash(VECTOR_1).hex()
        == "5aa07fc8dabd4bca3ec17c5d9a9411722a6318776227c10a2cb0b9f1dff786fa"
    )
    for name, value in [
        ("user_id", "user124"),
        ("sequence", "1"),
        ("recorded_at", "2024-01-01T00:00:00.000001Z"),
    ]:
        assert verify.event_leaf_hash({**VECTOR_0, name: value}).hex() != VECTOR_0["leaf_hash"]


@settings(max_examples=60, deadline=None)
@given(new_events(), st.integers(0, 2**40), st.uuids())
def test_any_event_as_the_api_or_a_json_export_shows_it_hashes_to_its_leaf(
    event: NewEvent, sequence: int, event_id: uuid.UUID
) -> None:
    if event.occurred_at is not None:
        # Stored times are UTC (validation parses RFC 3339, whose offsets are whole minutes).
        event = dataclasses.replace(event, occurred_at=event.occurred_at.astimezone(UTC))
    try:
        record = build_record(
            event,
            sequence=sequence,
            recorded_at=datetime(2024, 5, 6, 7, 8, 9, 120000, tzinfo=UTC),
            prev=ZERO_HASH,
            event_id=event_id,
        )
    except ValueError:
        assume(False)  # details validation would have refused (e.g. integers past 2^53)
    shown = json.loads(
        json.dumps(json_format.MessageToDict(event_to_proto(record), preserving_proto_field_name=True))
    )
    assert verify.event_leaf_hash(shown) == record.leaf_hash
    exported = json.loads(json.dumps(event_object(record), ensure_ascii=False))
    assert verify.event_leaf_hash(exported) == record.leaf_hash


def test_the_client_package_imports_nothing_of_the_server() -> None:
    client = Path(__file__).resolve().parents[2] / "clients" / "auditlog_client"
    imported = set()
    for path in client.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                imported.add((path.name, node.module or ""))
            elif isinstance(node, ast.Import):
                imported.update((path.name, alias.name) for alias in node.names)
    assert [(f, m) for f, m in sorted(imported) if m == "auditlog" or m.startswith("auditlog.")] == []
