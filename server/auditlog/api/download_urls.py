"""Signed download URLs of locally stored exports: `.../content?expires=<unix seconds>&signature=<s>`,
s = base64url(HMAC-SHA256(K, job id || 0x0A || expires)) without padding, where K = HMAC-SHA256(page
token key, "auditlog export download URL"): the database's page token key (migration 0006), so every
server process on the database accepts every other's URLs, with a purpose label of its own, so
nothing signed as a page token passes as a URL or the other way round."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from auditlog.errors import PermissionDeniedError

PURPOSE = b"auditlog export download URL"


class DownloadRefusedError(PermissionDeniedError):
    """A download without the role it needs, or with an expired or altered URL."""


class DownloadSigner:
    """Signs download URLs valid for expiry, and checks them."""

    def __init__(self, page_token_key: bytes, expiry: timedelta, clock: Callable[[], datetime]) -> None:
        self._key = hmac.new(page_token_key, PURPOSE, hashlib.sha256).digest()
        self._expiry = expiry
        self._clock = clock

    def _signature(self, job_id: str, expires: int) -> str:
        mac = hmac.new(self._key, f"{job_id}\n{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def sign(self, url: str, job_id: str) -> tuple[str, datetime]:
        """url with expires and signature added, and the moment it expires (whole seconds)."""
        expires = int((self._clock() + self._expiry).timestamp())
        signed = f"{url}?expires={expires}&signature={self._signature(job_id, expires)}"
        return signed, datetime.fromtimestamp(expires, UTC)

    def check(self, job_id: str, expires: int, signature: str) -> None:
        """Raises DownloadRefusedError unless signature is this server's for job_id and expires, and
        expires has not passed."""
        if not hmac.compare_digest(signature.encode(), self._signature(job_id, expires).encode()):
            raise DownloadRefusedError(
                "download URL refused: its signature does not match; ask GetExportDownload for a new URL"
            )
        if self._clock().timestamp() >= expires:
            raise DownloadRefusedError(
                "download URL refused: it has expired; ask GetExportDownload for a new URL"
            )
