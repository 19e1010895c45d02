"""Keeps the credentials of DATABASE_URL out of everything the service prints or logs.

Of a database URL only the scheme, host, port and database name may be shown. libpq quotes the
parts it cannot parse (`invalid percent-encoded token: "S3cr%zzPass"`), so its messages, and
any log line or start-up error built from them, go through redact() first.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote

# Query parameters that name where to connect, not who connects; everything else may be a secret.
_PLACES = frozenset({"host", "hostaddr", "port", "dbname"})
_MASK = "***"
_registered: set[str] = set()


def url_secrets(url: str) -> set[str]:
    """The user name, password and query values of url (raw and percent-decoded), including the
    pieces a parser could split them into at ':', '@' or '/'."""
    _, _, rest = url.partition("://")
    head, _, query = rest.partition("?")
    userinfo = head.rpartition("@")[0]
    found = {userinfo, *re.split(r"[:@/]", userinfo)}
    for pair in query.split("&"):
        key, _, value = pair.partition("=")
        if unquote(key).strip() not in _PLACES:
            found.add(value)
    found |= {unquote(piece) for piece in found}
    return {piece for piece in found if piece.strip()}


def register(url: str) -> None:
    """From now on, redact() hides url's secrets."""
    _registered.update(url_secrets(url))


def register_secret(value: str) -> None:
    """From now on, redact() hides value (a password the service made itself)."""
    _registered.add(value)


def redact(text: str, secrets: set[str] | None = None) -> str:
    """text with every secret (default: the registered ones) replaced by ***, where it stands as
    a word of its own (so a user named `postgres` leaves `postgresql://` alone)."""
    chosen = _registered if secrets is None else secrets
    if not chosen:
        return text
    alternatives = "|".join(re.escape(s) for s in sorted(chosen, key=len, reverse=True))
    return re.sub(rf"(?<![A-Za-z0-9_])(?:{alternatives})(?![A-Za-z0-9_])", _MASK, text)


class RedactingFormatter(logging.Formatter):
    """A log formatter whose lines (tracebacks included) never carry a registered secret."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def redact_logging() -> None:
    """Puts a RedactingFormatter, same format, on every handler of the root logger."""
    for handler in logging.getLogger().handlers:
        current = handler.formatter
        handler.setFormatter(
            RedactingFormatter(current._fmt if current else None, current.datefmt if current else None)
        )
