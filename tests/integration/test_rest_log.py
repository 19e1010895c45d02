"""The verifiable log over REST through Envoy: the signed note as text/plain, proofs as JSON, and
the static C2SP paths a tlog client or witness follows."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

from auditlog.domain.merkle import root_from_leaves, verify_consistency, verify_inclusion
from auditlog.domain.notes import Verifier, open_checkpoint, parse_tlog_proof
from tests.fix_gateway import RestStack

COUNT = 300


def test_checkpoint_proofs_and_tiles_over_rest(rest_fresh: RestStack) -> None:
    checkpointer = rest_fresh.service.checkpointer
    assert checkpointer is not None
    ids = [
        rest_fresh.post_json("/api/v1/audit", {"event_type": "r.x", "action": "a"}).json()["id"]
        for _ in range(3)
    ]
    checkpointer.tick()

    info = rest_fresh.get("/api/v1/log").json()
    verifier = Verifier.from_key(info["verifier_key"])
    assert info["tree_size"] == "3"
    reply = rest_fresh.get("/api/v1/log/checkpoint")
    assert reply.status == 200 and reply.headers["content-type"].startswith("text/plain")
    checkpoint = open_checkpoint(reply.body, [verifier])
    assert checkpoint.size == 3 and checkpoint.origin == info["origin"]
    static = rest_fresh.get("/log/checkpoint")
    assert (static.status, static.body) == (200, reply.body)

    proof = rest_fresh.get(f"/api/v1/audit/{ids[1]}/proof").json()
    hashes = [base64.b64decode(h) for h in proof["hashes"]]
    leaf = base64.b64decode(proof["leaf_hash"])
    assert (proof["sequence"], proof["tree_size"]) == ("1", "3")
    verify_inclusion(1, 3, leaf, hashes, checkpoint.root)
    assert proof["checkpoint"] == reply.body.decode()
    by_sequence = rest_fresh.get("/api/v1/log/inclusion?sequence=2&tree_size=3").json()
    assert by_sequence["id"] == ids[2]

    consistency = rest_fresh.get("/api/v1/log/consistency?first=1&second=3").json()
    tile = rest_fresh.get("/log/tile/0/000.p/3")
    assert tile.status == 200 and tile.headers["content-type"] == "application/octet-stream"
    leaves = [tile.body[i : i + 32] for i in range(0, 96, 32)]
    assert root_from_leaves(leaves) == checkpoint.root
    verify_consistency(
        1,
        3,
        [base64.b64decode(h) for h in consistency["hashes"]],
        root_from_leaves(leaves[:1]),
        checkpoint.root,
    )


def test_bad_proof_requests_over_rest_are_400_with_the_field(rest_fresh: RestStack) -> None:
    checkpointer = rest_fresh.service.checkpointer
    assert checkpointer is not None
    rest_fresh.post_json("/api/v1/audit", {"event_type": "r.x", "action": "a"})
    checkpointer.tick()
    reply = rest_fresh.get("/api/v1/log/consistency?first=2&second=1")
    assert reply.status == 400
    body = reply.json()
    violations = body["details"][0]["field_violations"]
    assert (
        violations[0]["field"] == "first" and "got 2, want at most second (1)" in violations[0]["description"]
    )
    assert rest_fresh.get("/api/v1/audit/123e4567-e89b-12d3-a456-426614174000/proof").status == 404
    assert rest_fresh.get("/log/tile/0/001").status == 404
    assert rest_fresh.get("/api/v1/log/checkpoint?tree_size=9").status == 400


def test_single_event_tlog_proof_download_verifies_offline(rest_fresh: RestStack) -> None:
    checkpointer = rest_fresh.service.checkpointer
    assert checkpointer is not None
    ids = [
        rest_fresh.post_json("/api/v1/audit", {"event_type": "r.x", "action": "a"}).json()["id"]
        for _ in range(5)
    ]
    checkpointer.tick()
    verifier = Verifier.from_key(rest_fresh.get("/api/v1/log").json()["verifier_key"])
    event = rest_fresh.get(f"/api/v1/audit/{ids[3]}").json()
    reply = rest_fresh.get(f"/api/v1/audit/{ids[3]}/tlog-proof")
    assert reply.status == 200 and reply.headers["content-type"].startswith("text/plain")
    assert reply.headers["content-disposition"] == f'attachment; filename="{ids[3]}.tlog-proof"'
    proof = parse_tlog_proof(reply.body)
    checkpoint = open_checkpoint(proof.checkpoint, [verifier])
    verify_inclusion(
        proof.index, checkpoint.size, bytes.fromhex(event["leaf_hash"]), list(proof.proof), checkpoint.root
    )
    unsigned = rest_fresh.get(f"/api/v1/audit/{ids[3]}/tlog-proof?tree_size=4")
    assert unsigned.status == 400


def test_auditctl_verifies_a_downloaded_proof_offline(rest_fresh: RestStack, tmp_path: Path) -> None:
    """The client's own verifier (written apart from the server's) accepts what the server serves."""
    checkpointer = rest_fresh.service.checkpointer
    assert checkpointer is not None
    ids = [
        rest_fresh.post_json("/api/v1/audit", {"event_type": "r.x", "action": "a"}).json()["id"]
        for _ in range(9)
    ]
    checkpointer.tick()
    key = rest_fresh.get("/api/v1/log").json()["verifier_key"]
    proof = tmp_path / "e.tlog-proof"
    proof.write_bytes(rest_fresh.get(f"/api/v1/audit/{ids[6]}/tlog-proof").body)
    event = tmp_path / "e.json"
    event.write_bytes(rest_fresh.get(f"/api/v1/audit/{ids[6]}").body)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "auditlog_client.cli",
            "verify-proof",
            str(proof),
            "--key",
            key,
            "--event",
            str(event),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    other = tmp_path / "other.json"
    other.write_bytes(rest_fresh.get(f"/api/v1/audit/{ids[5]}").body)
    refused = subprocess.run(
        [
            sys.executable,
            "-m",
            "auditlog_client.cli",
            "verify-proof",
            str(proof),
            "--key",
            key,
            "--event",
            str(other),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 3, refused.stderr
