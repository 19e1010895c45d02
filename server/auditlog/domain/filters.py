"""Event filters as values, and the token that carries a keyset position between pages."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import datetime

from auditlog.domain.page_token import PageTokenCodec
from auditlog.domain.schema import FILTER_NAMES

# The exact-match filters, named as the event fields they compare; start_date and end_date bound
# recorded_at.
TEXT_FILTER_FIELDS = FILTER_NAMES
FILTER_FIELDS: tuple[str, ...] = (*TEXT_FILTER_FIELDS, "start_date", "end_date")


@dataclass(frozen=True)
class EventFilter:
    """All set fields must match; "" / None means unset. Dates bound recorded_at inclusively."""

    event_type: str = ""
    user_id: str = ""
    action: str = ""
    resource_type: str = ""
    resource_id: str = ""
    risk_level: str = ""
    ip_address: str = ""
    start_date: datetime | None = None
    end_date: datetime | None = None

    def fingerprint(self) -> str:
        """A short digest of the filter, so a page token is refused with other filters."""
        values = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in asdict(self).items()}
        return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class PageToken:
    """Keyset position: the last sequence returned, the order, and the filter it belongs to."""

    last_sequence: int
    descending: bool
    filter_fingerprint: str

    def encode(self, codec: PageTokenCodec) -> str:
        return codec.encode(
            _EVENTS, {"s": self.last_sequence, "d": self.descending, "f": self.filter_fingerprint}
        )

    @classmethod
    def decode(cls, codec: PageTokenCodec, field: str, token: str) -> PageToken:
        data = codec.decode(_EVENTS, field, token)
        return cls(int(data["s"]), bool(data["d"]), str(data["f"]))


_EVENTS = "events"
