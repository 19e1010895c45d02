"""Who a call runs as: the principal the authentication interceptor bound for the current call.

Set per call (a ContextVar, so each worker thread sees only its own call); None when auth is off.
"""

from __future__ import annotations

import enum
from contextvars import ContextVar, Token
from dataclasses import dataclass


class Role(enum.Enum):
    """What a principal may do; each role includes the ones before it except writer."""

    WRITER = "writer"
    READER = "reader"
    AUDITOR = "auditor"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: name is what the log records (e.g. `key:ci-writer`)."""

    name: str
    role: Role


_current: ContextVar[Principal | None] = ContextVar("auditlog_principal", default=None)


def current_principal() -> Principal | None:
    """The principal of the call running on this thread, None when auth is off."""
    return _current.get()


def bind_principal(principal: Principal | None) -> Token[Principal | None]:
    """Makes principal the current one until reset_principal(token)."""
    return _current.set(principal)


def reset_principal(token: Token[Principal | None]) -> None:
    _current.reset(token)
