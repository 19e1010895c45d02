"""Page tokens: opaque to clients and tamper-evident.

A token is base64url(payload || HMAC-SHA256(key, kind || 0x00 || payload)), the payload a small JSON
object of the server's own making. The MAC is checked before anything in the token is parsed, so a
token the server did not issue (forged, altered, from before tokens were signed, or of another kind
of list) is refused with one message and never reaches a parser.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any

from auditlog.errors import FieldViolation, InvalidArgumentError

KEY_BYTES = 32
_MAC_BYTES = hashlib.sha256().digest_size
# Far above any token this server issues (about 150 characters), so a huge one is refused unread.
MAX_TOKEN_CHARS = 1_024


class PageTokenCodec:
    """Signs and checks the page tokens of every list RPC with one server key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"page token key: got {len(key)} bytes, want {KEY_BYTES}")
        self._key = key

    def _mac(self, kind: str, payload: bytes) -> bytes:
        return hmac.new(self._key, kind.encode() + b"\x00" + payload, hashlib.sha256).digest()

    def encode(self, kind: str, values: dict[str, Any]) -> str:
        """The token for values (JSON-serialisable), valid only where decode is given the same kind."""
        payload = json.dumps(values, separators=(",", ":"), sort_keys=True).encode()
        return base64.urlsafe_b64encode(payload + self._mac(kind, payload)).decode().rstrip("=")

    def decode(self, kind: str, field: str, token: str) -> dict[str, Any]:
        """The values of a token this server issued for kind; InvalidArgumentError naming field otherwise."""
        payload = self._verified(kind, token)
        if payload is None:
            raise InvalidArgumentError(
                [
                    FieldViolation(
                        field,
                        "got a token this server did not issue, want a next_page_token from a previous response",
                    )
                ]
            )
        values: dict[str, Any] = json.loads(payload)
        return values

    def _verified(self, kind: str, token: str) -> bytes | None:
        if len(token) > MAX_TOKEN_CHARS or not token.isascii():
            return None
        try:
            raw = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_", validate=True)
        except (binascii.Error, ValueError):
            return None
        payload, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
        if len(raw) <= _MAC_BYTES or not hmac.compare_digest(mac, self._mac(kind, payload)):
            return None
        return payload
