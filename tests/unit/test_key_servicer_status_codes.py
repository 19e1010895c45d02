"""Every status-code path of KeyService, in process (grpc_testing) over the in-memory key store
(storage.memory.MemoryKeys): no database. tests/integration/test_api_keys_db.py checks the
PostgreSQL store answers alike."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import grpc
import pytest

from audit.v1 import key_service_pb2 as pb
from auditlog.api.key_servicer import KeyServicer
from auditlog.storage.memory import MemoryKeys
from tests.fix_servicers import MEMORY_NOW, fields_of, unary

KEYS = pb.DESCRIPTOR.services_by_name["KeyService"]
SECRET = re.compile(r"al_[a-z2-7]{52}")


class Clock:
    """MEMORY_NOW, a minute later at each reading."""

    def __init__(self) -> None:
        self.readings = 0

    def __call__(self) -> Any:
        self.readings += 1
        return MEMORY_NOW + timedelta(minutes=self.readings)


@pytest.fixture
def store() -> MemoryKeys:
    return MemoryKeys(Clock())


@pytest.fixture
def changes() -> list[str]:
    return []


@pytest.fixture
def service(store: MemoryKeys, changes: list[str]) -> KeyServicer:
    return KeyServicer(store, lambda: changes.append("changed"))


def create(service: KeyServicer, name: str, role: str = "reader") -> tuple[Any, grpc.StatusCode, str]:
    answer, code, details, _ = unary(service, KEYS, "CreateKey", pb.CreateKeyRequest(name=name, role=role))
    return answer, code, details


def test_create_list_and_revoke(service: KeyServicer, changes: list[str]) -> None:
    first, code, _ = create(service, "ci-writer", "writer")
    assert code == grpc.StatusCode.OK and SECRET.fullmatch(first.secret)
    assert (first.key.name, first.key.role) == ("ci-writer", "writer")
    assert first.key.HasField("created_at") and not first.key.HasField("revoked_at")
    second, code, _ = create(service, "auditor")
    assert code == grpc.StatusCode.OK and second.secret != first.secret
    assert changes == ["changed", "changed"]  # the process's key cache hears of each new key
    listed, code, _, _ = unary(service, KEYS, "ListKeys", pb.ListKeysRequest())
    assert code == grpc.StatusCode.OK and [k.name for k in listed.keys] == ["auditor", "ci-writer"]
    assert all(not k.HasField("last_used_at") for k in listed.keys)
    revoked, code, _, _ = unary(service, KEYS, "RevokeKey", pb.RevokeKeyRequest(name="ci-writer"))
    assert code == grpc.StatusCode.OK and revoked.HasField("revoked_at") and len(changes) == 3
    again, code, _, _ = unary(service, KEYS, "RevokeKey", pb.RevokeKeyRequest(name="ci-writer"))
    assert code == grpc.StatusCode.OK and again.revoked_at == revoked.revoked_at


@pytest.mark.parametrize(
    ("method", "request_message"),
    [
        ("CreateKey", pb.CreateKeyRequest(name="k", role="admin")),
        ("ListKeys", pb.ListKeysRequest()),
        ("RevokeKey", pb.RevokeKeyRequest(name="k")),
    ],
)
def test_failed_precondition_with_auth_off(store: MemoryKeys, method: str, request_message: Any) -> None:
    service = KeyServicer(store, None)
    _, code, details, _ = unary(service, KEYS, method, request_message)
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert details == (
        "API keys are managed only with AUDITLOG_AUTH=required; use `auditlog keys` on the database"
    )
    assert store.keys == {}


@pytest.mark.parametrize(
    ("name", "role", "fields"),
    [
        ("", "reader", ["name"]),
        ("has space", "reader", ["name"]),
        ("x" * 65, "reader", ["name"]),
        ("k", "", ["role"]),
        ("k", "root", ["role"]),
        ("bad/name", "Admin", ["name", "role"]),
    ],
)
def test_invalid_argument_names_every_bad_field(
    service: KeyServicer, store: MemoryKeys, changes: list[str], name: str, role: str, fields: list[str]
) -> None:
    _, code, details = create(service, name, role)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and fields_of(details) == fields
    assert store.keys == {} and changes == []


def test_a_name_in_use_is_invalid_argument(service: KeyServicer, changes: list[str]) -> None:
    create(service, "k")
    _, code, details = create(service, "k", "admin")
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details == "invalid request: name: got 'k', which an existing key has; want a new name"
    assert changes == ["changed"]


def test_revoking_an_unknown_key_is_not_found(service: KeyServicer, changes: list[str]) -> None:
    _, code, details, _ = unary(service, KEYS, "RevokeKey", pb.RevokeKeyRequest(name="nobody"))
    assert (code, details) == (grpc.StatusCode.NOT_FOUND, "no API key named 'nobody'")
    assert changes == []


@pytest.mark.parametrize(
    ("method", "request_message"),
    [
        ("CreateKey", pb.CreateKeyRequest(name="k", role="admin")),
        ("ListKeys", pb.ListKeysRequest()),
        ("RevokeKey", pb.RevokeKeyRequest(name="k")),
    ],
)
def test_unavailable_when_the_storage_is_unreachable(
    service: KeyServicer, store: MemoryKeys, changes: list[str], method: str, request_message: Any
) -> None:
    store.unavailable = True
    _, code, details, _ = unary(service, KEYS, method, request_message)
    assert code == grpc.StatusCode.UNAVAILABLE and details == "the database is unavailable; retry later"
    assert changes == []
