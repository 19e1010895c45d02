"""audit.v1.KeyService: API keys managed over the API (admin role; see auditlog.api.auth)."""

from __future__ import annotations

from collections.abc import Callable

import grpc

from audit.v1 import key_service_pb2 as pb
from audit.v1 import key_service_pb2_grpc
from auditlog.errors import FailedPreconditionError
from auditlog.storage.api import KeyStore
from auditlog.storage.postgres.api_keys import ApiKey


def _key_to_proto(key: ApiKey) -> pb.ApiKey:
    message = pb.ApiKey(name=key.name, role=key.role.value)
    message.created_at.FromDatetime(key.created_at)
    if key.last_used_at is not None:
        message.last_used_at.FromDatetime(key.last_used_at)
    if key.revoked_at is not None:
        message.revoked_at.FromDatetime(key.revoked_at)
    return message


class KeyServicer(key_service_pb2_grpc.KeyServiceServicer):
    """changed: called after a key is made or revoked, so this process sees it at once; None when
    auth is off, where every call is refused: a server anyone may call must not mint keys that a
    server with auth on would honour."""

    def __init__(self, keys: KeyStore, changed: Callable[[], None] | None) -> None:
        self._keys = keys
        self._changed = changed

    def _check_on(self) -> Callable[[], None]:
        if self._changed is None:
            raise FailedPreconditionError(
                "API keys are managed only with AUDITLOG_AUTH=required; use `auditlog keys` on the database"
            )
        return self._changed

    def CreateKey(self, request: pb.CreateKeyRequest, context: grpc.ServicerContext) -> pb.CreateKeyResponse:
        changed = self._check_on()
        key, secret = self._keys.create_key(request.name, request.role)
        changed()
        return pb.CreateKeyResponse(key=_key_to_proto(key), secret=secret)

    def ListKeys(self, request: pb.ListKeysRequest, context: grpc.ServicerContext) -> pb.ListKeysResponse:
        self._check_on()
        keys = self._keys.list_keys()
        return pb.ListKeysResponse(keys=[_key_to_proto(key) for key in keys])

    def RevokeKey(self, request: pb.RevokeKeyRequest, context: grpc.ServicerContext) -> pb.ApiKey:
        changed = self._check_on()
        key = self._keys.revoke_key(request.name)
        changed()
        return _key_to_proto(key)
