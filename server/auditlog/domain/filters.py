"""Event filters as values, and the token that carries a keyset position between pages."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from auditlog.domain.page_token import PageTokenCodec
from auditlog.domain.schema import FILTER_NAMES

# The exact-match filters, named as the event fields they compare; start_date and end_date bound
# recorded_at.
TEXT_FILTER_FIELDS = FILTER_NAMES
FILTER_FIELDS: tuple[str, ...] = (*TEXT_FILTER_FIELDS, "start_date", "end_date")


@dataclass(frozen=True)
class EventFilter:
    """All set values must match. texts: the exact-match values that are set (not ""), as (field
    name, value) in TEXT_FILTER_FIELDS order (EventFilter.of makes them); the dates bound
    recorded_at inclusively (None: unbounded)."""

    texts: tuple[tuple[str, str], ...] = ()
    start_date: datetime | None = None
    end_date: datetime | None = None

    @classmethod
    def of(
        cls,
        texts: Mapping[str, str] | None = None,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
    ) -> EventFilter:
        """The filter of texts (field name to value; "" or absent: unset) and the dates."""
        texts = texts or {}
        unknown = set(texts) - set(TEXT_FILTER_FIELDS)
        if unknown:
            raise ValueError(f"not exact-match filter fields: {sorted(unknown)}")
        return cls(tuple((n, texts[n]) for n in TEXT_FILTER_FIELDS if texts.get(n)), start_date, end_date)

    def values(self) -> dict[str, str | datetime | None]:
        """Every field of FILTER_FIELDS, in its order, by name ("" / None when unset)."""
        texts = dict(self.texts)
        return {
            **{name: texts.get(name, "") for name in TEXT_FILTER_FIELDS},
            "start_date": self.start_date,
            "end_date": self.end_date,
        }

    def fingerprint(self) -> str:
        """A short digest of the filter, so a page token is refused with other filters."""
        values = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in self.values().items()}
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
