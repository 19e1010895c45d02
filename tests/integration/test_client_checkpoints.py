"""Client-held checkpoints against real servers: AuditClient(checkpoint_state=..., verifier_key=...)
and `auditctl checkpoint --state` accept a newer checkpoint only with a consistency proof from the
stored one, and refuse a second server that signs another history with the same key (a fork) or a
shorter one (a rollback), leaving the state file as it was."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from audit.v1 import log_service_pb2, log_service_pb2_grpc
from auditlog.app import Service, create_service
from auditlog_client import AuditClient, LogInconsistentError
from tests.fix_cli import auditctl
from tests.fix_db import create_database, drop_database, login_url
from tests.fix_server import append_padded, server_config
from tests.fix_vlog import sign_now


@pytest.fixture
def signer_key(service: Service, tmp_path: Path) -> str:
    return (tmp_path / "data" / "checkpoint-signer.key").read_text().strip()


@pytest.fixture
def verifier_key(target: str) -> str:
    with grpc.insecure_channel(target) as channel:
        info = log_service_pb2_grpc.LogServiceStub(channel).GetLogInfo(log_service_pb2.GetLogInfoRequest())
    return str(info.verifier_key)


@pytest.fixture
def impostor(admin_url: str, test_login: str, tmp_path: Path, signer_key: str) -> Iterator[Service]:
    """A second server on its own database, signing its own history with the first one's key."""
    url = create_database(admin_url)
    config = dataclasses.replace(server_config(tmp_path / "impostor"), signing_key=signer_key)
    svc = create_service(config, database_url=login_url(url, test_login), migration_url=url)
    try:
        yield svc
    finally:
        svc.stop(grace=2)
        drop_database(admin_url, url)


def test_the_client_follows_a_growing_log_and_refuses_a_rollback_and_a_fork(
    service: Service, target: str, verifier_key: str, impostor: Service, tmp_path: Path
) -> None:
    state = tmp_path / "client" / "checkpoint"
    append_padded(target, 5, 10)
    sign_now(service)
    with AuditClient(target, verifier_key=verifier_key, checkpoint_state=state) as client:
        assert client.checkpoint().size == 5
        append_padded(target, 300, 10)
        sign_now(service)
        grown = client.checkpoint()
        assert grown.size == 305
        assert state.read_text() == grown.note
    kept = state.read_text()
    impostor_target = f"127.0.0.1:{impostor.port}"
    append_padded(impostor_target, 3, 10, event_type="other.history")
    assert sign_now(impostor).tree_size == 3
    with AuditClient(impostor_target, verifier_key=verifier_key, checkpoint_state=state) as client:
        # The impostor's checkpoints are signed with the log's key: only the state catches it.
        with pytest.raises(LogInconsistentError, match="a rollback"):
            client.checkpoint()
        append_padded(impostor_target, 310, 10, event_type="other.history")
        assert sign_now(impostor).tree_size == 313
        with pytest.raises(LogInconsistentError, match="a fork"):
            client.checkpoint()
    assert state.read_text() == kept
    # A client without state takes the impostor's checkpoint: its signature is valid.
    with AuditClient(impostor_target, verifier_key=verifier_key) as client:
        assert client.checkpoint().size == 313


def test_auditctl_checkpoint_keeps_state_and_exits_3_on_a_fork(
    service: Service, target: str, verifier_key: str, impostor: Service, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    append_padded(target, 4, 10)
    sign_now(service)
    first = auditctl("--target", target, "checkpoint", "--key", verifier_key, "--state", state)
    assert (first.returncode, first.stderr) == (0, ""), first.stderr
    assert first.stdout.startswith("checkpoint valid: ") and " size 4 root " in first.stdout
    assert first.stdout.endswith(f", the first kept in {state}\n")
    append_padded(target, 2, 10)
    sign_now(service)
    second = auditctl("--target", target, "checkpoint", "--key", verifier_key, "--state", state)
    assert (second.returncode, second.stderr) == (0, ""), second.stderr
    assert " size 6 root " in second.stdout and second.stdout.endswith(", consistent with size 4\n")
    impostor_target = f"127.0.0.1:{impostor.port}"
    append_padded(impostor_target, 6, 10, event_type="other.history")
    sign_now(impostor)
    forked = auditctl("--target", impostor_target, "checkpoint", "--key", verifier_key, "--state", state)
    assert forked.returncode == 3 and forked.stdout == "", forked.stdout + forked.stderr
    assert (
        forked.stderr.count("\n") == 1 and "two different roots for the same size 6: a fork" in forked.stderr
    )
    assert "Traceback" not in forked.stderr
