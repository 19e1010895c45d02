"""Offline verification as a user runs it: auditctl verify-checkpoint / verify-proof on files made
with the server's own domain modules (no server), and the client's checkpoint store refusing a
rollback or a fork. Valid files: exit 0 and one line; anything tampered: exit 3 and one line."""

from __future__ import annotations

import base64
import json
import subprocess
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from google.protobuf import json_format

from auditlog.api.convert import event_to_proto
from auditlog.domain import merkle, notes
from auditlog.domain.canonical import ZERO_HASH
from auditlog.domain.chain import build_record
from auditlog.domain.event import EventRecord, NewEvent
from auditlog_client import CheckpointState, VerificationError
from tests.fix_cli import auditctl

ORIGIN = "auditlog.test/log"


def passed(done: subprocess.CompletedProcess[str]) -> str:
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    assert done.stdout.count("\n") == 1
    return done.stdout


def refused(done: subprocess.CompletedProcess[str], said: str, code: int = 3) -> None:
    assert done.returncode == code, done.stdout + done.stderr
    assert done.stdout == "" and done.stderr.count("\n") == 1, done.stderr
    assert said in done.stderr and "Traceback" not in done.stderr, done.stderr


@dataclass
class Log:
    records: list[EventRecord]
    signer: notes.Signer

    @property
    def leaves(self) -> list[bytes]:
        return [r.leaf_hash for r in self.records]

    def checkpoint(self, size: int) -> str:
        root = merkle.root_from_leaves(self.leaves[:size])
        return notes.sign_note(notes.Checkpoint(ORIGIN, size, root).body(), [self.signer])

    def consistency(self, size1: int, size2: int) -> list[bytes]:
        return merkle.consistency_proof_from_leaves(size1, self.leaves[:size2])

    def event_json(self, sequence: int) -> str:
        shown = json_format.MessageToDict(
            event_to_proto(self.records[sequence]), preserving_proto_field_name=True
        )
        return json.dumps(shown)

    def proof_file(self, index: int, size: int, *, extra: bool = False) -> str:
        proof = merkle.inclusion_proof_from_leaves(index, self.leaves[:size])
        return notes.format_tlog_proof(
            index, proof, self.checkpoint(size), extra=self.leaves[index] if extra else None
        )


def make_log(n: int, signer: notes.Signer, *, salt: str = "") -> Log:
    records: list[EventRecord] = []
    prev = ZERO_HASH
    for i in range(n):
        record = build_record(
            NewEvent(
                event_type="user.login", action="login", user_id=f"user{i}{salt}", details={"n": float(i)}
            ),
            sequence=i,
            recorded_at=datetime(2024, 1, 1, 0, 0, i, tzinfo=UTC),
            prev=prev,
            event_id=uuid.UUID(int=i + 1),
        )
        records.append(record)
        prev = record.chain_hash
    return Log(records, signer)


@pytest.fixture(scope="module")
def log() -> Log:
    return make_log(21, notes.generate_signer(ORIGIN))


def hash_lines(hashes: list[bytes]) -> str:
    return "".join(base64.b64encode(h).decode() + "\n" for h in hashes)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_verify_checkpoint_alone_and_against_an_earlier_one(log: Log, tmp_path: Path) -> None:
    key = log.signer.verifier_key()
    new = write(tmp_path / "new", log.checkpoint(21))
    out = passed(auditctl("verify-checkpoint", new, "--key", key))
    assert out.startswith(f"checkpoint valid: {ORIGIN} size 21 root ")
    old = write(tmp_path / "old", log.checkpoint(13))
    proof = write(tmp_path / "proof", hash_lines(log.consistency(13, 21)))
    out = passed(auditctl("verify-checkpoint", new, "--key", key, "--previous", old, "--proof", proof))
    assert out.endswith(", consistent with size 13\n")


def test_verify_checkpoint_refuses_tampering_a_wrong_key_a_fork_and_a_rollback(
    log: Log, tmp_path: Path
) -> None:
    key = log.signer.verifier_key()
    good = log.checkpoint(21)
    grown = write(tmp_path / "grown", good.replace("\n21\n", "\n22\n", 1))
    refused(
        auditctl("verify-checkpoint", grown, "--key", key), "signature by auditlog.test/log does not verify"
    )
    new = write(tmp_path / "new", good)
    stranger = notes.generate_signer(ORIGIN).verifier_key()
    refused(auditctl("verify-checkpoint", new, "--key", stranger), "not signed by auditlog.test/log+")
    # A fork: another history of 13 events, signed by the same key.
    forked = make_log(21, log.signer, salt="-rewritten")
    old = write(tmp_path / "old", forked.checkpoint(13))
    proof = write(tmp_path / "proof", hash_lines(log.consistency(13, 21)))
    refused(auditctl("verify-checkpoint", new, "--key", key, "--previous", old, "--proof", proof), "a fork")
    # A rollback: the "new" checkpoint is smaller than the one seen before.
    later = write(tmp_path / "later", log.checkpoint(21))
    earlier = write(tmp_path / "earlier", log.checkpoint(13))
    empty = write(tmp_path / "empty", "")
    refused(
        auditctl("verify-checkpoint", earlier, "--key", key, "--previous", later, "--proof", empty),
        "a rollback",
    )
    tampered = write(tmp_path / "tampered", hash_lines(flip(log.consistency(13, 21))))
    old_good = write(tmp_path / "old-good", log.checkpoint(13))
    refused(
        auditctl("verify-checkpoint", new, "--key", key, "--previous", old_good, "--proof", tampered),
        "a fork",
    )


def flip(hashes: list[bytes]) -> list[bytes]:
    return [bytes([hashes[0][0] ^ 1]) + hashes[0][1:], *hashes[1:]]


def test_usage_problems_exit_2_naming_the_option(log: Log, tmp_path: Path) -> None:
    new = write(tmp_path / "new", log.checkpoint(21))
    refused(
        auditctl("verify-checkpoint", new, "--key", "not-a-key"), "--key: the verifier key is malformed", 2
    )
    refused(
        auditctl("verify-checkpoint", tmp_path / "absent", "--key", log.signer.verifier_key()),
        "cannot read",
        2,
    )
    refused(
        auditctl("verify-checkpoint", new, "--key", log.signer.verifier_key(), "--previous", new),
        "--previous and --proof go together",
        2,
    )


def test_verify_proof_with_the_event_as_the_api_returns_it(log: Log, tmp_path: Path) -> None:
    key = log.signer.verifier_key()
    proof = write(tmp_path / "e7.tlog-proof", log.proof_file(7, 21))
    event = write(tmp_path / "e7.json", log.event_json(7))
    out = passed(auditctl("verify-proof", proof, "--key", key, "--event", event))
    assert out == f"proof valid: event {log.records[7].id} is entry 7 of {ORIGIN} at size 21\n"
    # Without the event, a proof file naming its leaf hash (the extra line) still checks inclusion.
    named = write(tmp_path / "named", log.proof_file(7, 21, extra=True))
    out = passed(auditctl("verify-proof", named, "--key", key))
    assert out == f"proof valid: leaf {log.leaves[7].hex()} is entry 7 of {ORIGIN} at size 21\n"
    refused(auditctl("verify-proof", proof, "--key", key), "give the event with --event")


def test_verify_proof_refuses_an_altered_event_or_proof(log: Log, tmp_path: Path) -> None:
    key = log.signer.verifier_key()
    proof = write(tmp_path / "p", log.proof_file(7, 21))
    shown = json.loads(log.event_json(7))
    altered = write(tmp_path / "altered.json", json.dumps({**shown, "user_id": "mallory"}))
    refused(auditctl("verify-proof", proof, "--key", key, "--event", altered), "do not hash to its leaf_hash")
    shown.pop("leaf_hash")
    rehashed = write(tmp_path / "rehashed.json", json.dumps({**shown, "user_id": "mallory"}))
    refused(auditctl("verify-proof", proof, "--key", key, "--event", rehashed), "entry 7 is not in the tree")
    other = write(tmp_path / "other.json", log.event_json(8))
    refused(
        auditctl("verify-proof", proof, "--key", key, "--event", other),
        "sequence is not the proof's index 7",
    )
    lines = log.proof_file(7, 21).split("\n")
    lines[2] = base64.b64encode(bytes(32)).decode()
    bad_hash = write(tmp_path / "bad-hash", "\n".join(lines))
    event = write(tmp_path / "e7.json", log.event_json(7))
    refused(auditctl("verify-proof", bad_hash, "--key", key, "--event", event), "entry 7 is not in the tree")
    resigned = write(
        tmp_path / "resigned",
        notes.format_tlog_proof(
            7,
            merkle.inclusion_proof_from_leaves(7, log.leaves),
            Log(log.records, notes.generate_signer(ORIGIN)).checkpoint(21),
        ),
    )
    refused(auditctl("verify-proof", resigned, "--key", key, "--event", event), "not signed by")
    refused(
        auditctl("verify-proof", write(tmp_path / "junk", "hello\n"), "--key", key),
        "not a c2sp.org/tlog-proof",
    )


def test_the_checkpoint_store_accepts_growth_and_refuses_rollback_and_fork(log: Log, tmp_path: Path) -> None:
    path = tmp_path / "state" / "checkpoint"
    state = CheckpointState(path, log.signer.verifier_key())
    assert state.current is None
    assert state.advance(log.checkpoint(5), []).size == 5
    assert path.read_text() == log.checkpoint(5)
    assert state.advance(log.checkpoint(13), log.consistency(5, 13)).size == 13
    assert state.advance(log.checkpoint(13), []).size == 13
    stored = path.read_text()
    with pytest.raises(VerificationError, match="from size 13 to 5: a rollback"):
        state.advance(log.checkpoint(5), [])
    forked = make_log(21, log.signer, salt="-fork")
    with pytest.raises(VerificationError, match="a fork"):
        state.advance(forked.checkpoint(21), forked.consistency(13, 21))
    with pytest.raises(VerificationError, match="a fork"):
        state.advance(forked.checkpoint(13), [])
    with pytest.raises(VerificationError, match="not signed by"):
        state.advance(Log(log.records, notes.generate_signer(ORIGIN)).checkpoint(21), log.consistency(13, 21))
    assert path.read_text() == stored
    # A second client process, reading the same file, continues from there.
    again = CheckpointState(path, log.signer.verifier_key())
    assert again.current is not None and again.current.size == 13
    assert again.advance(log.checkpoint(21), log.consistency(13, 21)).size == 21
    assert sorted(p.name for p in path.parent.iterdir()) == ["checkpoint", "checkpoint.lock"]


def test_a_tampered_stored_checkpoint_is_not_trusted(log: Log, tmp_path: Path) -> None:
    path = tmp_path / "checkpoint"
    state = CheckpointState(path, log.signer.verifier_key())
    state.advance(log.checkpoint(13), [])
    path.write_text(path.read_text().replace("\n13\n", "\n3\n"))
    with pytest.raises(VerificationError, match="stored checkpoint in checkpoint is not valid"):
        state.advance(log.checkpoint(21), log.consistency(13, 21))
