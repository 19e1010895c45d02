"""Authentication and authorisation of every call: `AuthInterceptor`, installed only with
AUDITLOG_AUTH=required (so auth off costs nothing per call).

A caller is an API key (`authorization: Bearer <key>` metadata; REST carries the same header
through Envoy) or a client certificate (mutual TLS; its SAN URI or DNS name mapped to a role).
`METHOD_ROLES` is the one table of which role each method needs; a method missing from it needs
admin (fail closed). Refusals end the call here, before any request handling: UNAUTHENTICATED for
missing or invalid credentials, PERMISSION_DENIED naming the role needed.

Keys are checked against an in-memory copy of the valid keys' digests, reloaded every
`REFRESH_SECONDS` (so a revocation holds within a second in every process, and no call queries the
database); last use is written at most once a minute per key.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import grpc

from auditlog.api.principal import Principal, Role, bind_principal, reset_principal
from auditlog.api.status import handler_parts, refuse
from auditlog.errors import PermissionDeniedError, UnauthenticatedError
from auditlog.storage.postgres import api_keys
from auditlog.storage.postgres.database import ServicePool

_log = logging.getLogger("auditlog.auth")
REFRESH_SECONDS = 0.5
LAST_USED_SECONDS = 60.0

# Methods anyone may call: health probes (load balancers and orchestrators hold no credentials).
PUBLIC_METHODS = frozenset(
    {
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/Watch",
        "/grpc.health.v1.Health/List",
        "/audit.v1.HealthService/Check",
        "/audit.v1.HealthService/Ready",
        "/audit.v1.HealthService/Live",
    }
)
# Any authenticated caller: reflection describes the API, never data.
ANY_ROLE = None
_AUDIT = "/audit.v1.AuditService/"
_EXPORT = "/audit.v1.ExportService/"
_KEYS = "/audit.v1.KeyService/"
# Methods a signed URL authorises without credentials (a download link handed to a browser).
SIGNED_URL_METHODS = frozenset({"/audit.v1.ExportService/DownloadExportContent"})
_LOG = "/audit.v1.LogService/"
# The role each method needs (admin may call everything). A method not here needs admin.
METHOD_ROLES: Mapping[str, Role | None] = {
    _AUDIT + "CreateEvent": Role.WRITER,
    _AUDIT + "AppendEvents": Role.WRITER,
    _AUDIT + "GetEvent": Role.READER,
    _AUDIT + "ListEvents": Role.READER,
    _AUDIT + "SearchEvents": Role.READER,
    _AUDIT + "VerifyChain": Role.READER,
    _AUDIT + "GetStats": Role.READER,
    _AUDIT + "TailEvents": Role.READER,
    # Checkpoints, proofs and tiles are reads too: a witness following the log holds a reader key.
    _LOG + "GetLogInfo": Role.READER,
    _LOG + "GetCheckpoint": Role.READER,
    _LOG + "GetInclusionProof": Role.READER,
    _LOG + "GetTlogProof": Role.READER,
    _LOG + "GetConsistencyProof": Role.READER,
    _LOG + "GetTile": Role.READER,
    _EXPORT + "CreateExport": Role.AUDITOR,
    _EXPORT + "ListExports": Role.AUDITOR,
    _EXPORT + "GetExport": Role.AUDITOR,
    _EXPORT + "GetExportDownload": Role.AUDITOR,
    _EXPORT + "DownloadExportContent": Role.AUDITOR,
    _EXPORT + "ListExportFormats": Role.AUDITOR,
    _KEYS + "CreateKey": Role.ADMIN,
    _KEYS + "ListKeys": Role.ADMIN,
    _KEYS + "RevokeKey": Role.ADMIN,
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": ANY_ROLE,
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo": ANY_ROLE,
}
# Which roles each needed role admits: admin everything, auditor every read too.
_ADMITS: Mapping[Role, frozenset[Role]] = {
    Role.WRITER: frozenset({Role.WRITER, Role.ADMIN}),
    Role.READER: frozenset({Role.READER, Role.AUDITOR, Role.ADMIN}),
    Role.AUDITOR: frozenset({Role.AUDITOR, Role.ADMIN}),
    Role.ADMIN: frozenset({Role.ADMIN}),
}
MISSING = "missing credentials: want metadata authorization: Bearer <API key>, or a client certificate"
INVALID = "invalid credentials"


def needed_role(method: str) -> Role | None:
    """The role method needs (None: any authenticated caller); admin for a method not in the table."""
    return METHOD_ROLES.get(method, Role.ADMIN)


def admits(needed: Role | None, role: Role) -> bool:
    return needed is None or role in _ADMITS[needed]


class KeyCache:
    """The valid keys' digests, reloaded from the database every REFRESH_SECONDS by a thread."""

    def __init__(self, pool: ServicePool) -> None:
        self._pool = pool
        self._keys: dict[bytes, Principal] = {}
        self._used: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="auth-keys", daemon=True)
        self.refresh()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._flush_used()

    def principal(self, secret: str) -> Principal | None:
        found = self._keys.get(api_keys.digest_of(secret))
        if found is not None:
            self._used.add(found.name)
        return found

    def refresh(self) -> None:
        with self._pool.connection() as conn:
            valid = api_keys.valid_digests(conn)
        self._keys = {digest: Principal(f"key:{name}", role) for digest, (name, role) in valid.items()}

    def _flush_used(self) -> None:
        if not self._used:
            return
        used, self._used = self._used, set()
        try:
            with self._pool.connection() as conn:
                api_keys.touch(conn, [name.removeprefix("key:") for name in used], datetime.now(UTC))
        except Exception as err:  # noqa: BLE001 - last use is best effort; the next flush retries
            self._used |= used
            _log.warning("API key last use not recorded: %s", type(err).__name__)

    def _run(self) -> None:
        flushes_every = max(1, round(LAST_USED_SECONDS / REFRESH_SECONDS))
        rounds = 0
        while not self._stop.wait(REFRESH_SECONDS):
            try:
                self.refresh()
            except Exception as err:  # noqa: BLE001 - keep the keys known until the database answers
                _log.warning("API keys not reloaded: %s", type(err).__name__)
            rounds += 1
            if rounds % flushes_every == 0:
                self._flush_used()


def _bearer(metadata: Any) -> str | None:
    """The authorization metadata's value; None without one."""
    for key, value in metadata or ():
        if key == "authorization":
            return value if isinstance(value, str) else value.decode("latin-1")
    return None


class Authenticator:
    """Who a call is, from its metadata and its TLS peer."""

    def __init__(self, tls_roles: Mapping[str, Role], keys: KeyCache | None = None) -> None:
        # Set once the database pool exists, before the server starts.
        self.keys = keys
        self._tls_roles = {
            identity.encode(): Principal(f"cert:{identity}", role) for identity, role in tls_roles.items()
        }

    def principal(self, context: grpc.ServicerContext) -> Principal | str:
        """The caller, or why not (MISSING or INVALID)."""
        header = _bearer(context.invocation_metadata())
        if header is not None:
            scheme, _, secret = header.strip().partition(" ")
            if scheme.lower() != "bearer" or self.keys is None:
                return INVALID
            return self.keys.principal(secret.strip()) or INVALID
        if not self._tls_roles:
            return MISSING
        peer = context.auth_context()
        identities = peer.get("x509_subject_alternative_name")
        if not identities:
            return MISSING
        for identity in identities:
            found = self._tls_roles.get(identity)
            if found is not None:
                return found
        return INVALID


def _check(authenticator: Authenticator, method: str, context: grpc.ServicerContext) -> Principal:
    """The caller if the method admits it; else ends the call (raises)."""
    found = authenticator.principal(context)
    name = method.rsplit("/", 1)[-1]
    if isinstance(found, str):
        refuse(context, name, UnauthenticatedError(found))
    needed = needed_role(method)
    if not admits(needed, found.role):
        message = f"permission denied: {name} needs role {needed.value if needed else 'any'}"
        _log.info("rpc=%s principal=%s code=PERMISSION_DENIED", name, found.name)
        refuse(context, name, PermissionDeniedError(f"{message}; the caller has role {found.role.value}"))
    return found


def _signed_caller(authenticator: Authenticator, context: grpc.ServicerContext) -> Principal | None:
    """Who fetches a signed download URL: the credentials' principal when they are valid, else
    nobody. The URL's signature is what authorises it; the servicer checks it (api.download_urls)."""
    found = authenticator.principal(context)
    return found if isinstance(found, Principal) else None


def _guarded(
    handler: grpc.RpcMethodHandler, method: str, authenticator: Authenticator
) -> grpc.RpcMethodHandler:
    make, behaviour = handler_parts(handler)
    signed = method in SIGNED_URL_METHODS

    if handler.response_streaming:

        def checked(request: Any, context: grpc.ServicerContext) -> Any:
            # Checked when the stream opens, before the handler's first step.
            if signed and getattr(request, "signature", None):
                token = bind_principal(_signed_caller(authenticator, context))
            else:
                token = bind_principal(_check(authenticator, method, context))
            try:
                yield from behaviour(request, context)
            finally:
                reset_principal(token)

    else:

        def checked(request: Any, context: grpc.ServicerContext) -> Any:
            token = bind_principal(_check(authenticator, method, context))
            try:
                return behaviour(request, context)
            finally:
                reset_principal(token)

    # grpcio runs a method on the thread pool its behaviour names (see api.limits.CallPool).
    pool = getattr(behaviour, "experimental_thread_pool", None)
    if pool is not None:
        setattr(checked, "experimental_thread_pool", pool)  # noqa: B010 - an attribute grpcio reads
    return make(
        checked,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


class AuthInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """Checks every call but PUBLIC_METHODS (see module docstring)."""

    def __init__(self, authenticator: Authenticator) -> None:
        self._authenticator = authenticator
        self._guarded: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or method in PUBLIC_METHODS:
            return handler
        known = self._guarded.get(method)
        if known is not None and known[0] is handler:
            return known[1]
        guarded = _guarded(handler, method, self._authenticator)
        # Only methods a service has get here, so the cache stays as small as the services.
        self._guarded[method] = (handler, guarded)
        return guarded
