"""The event's fields, declared once. Everything that lists them is derived from FIELDS: the
canonical form and its fast templates (canonical.py), the records (event.py), validation, SQL column
lists, COPY lines, rows read back, export columns and the proto mapping.

Adding a field: one entry here, a migration adding its column, and the field in proto/ (AuditEvent,
and EventInput for a client field). The new field is then hashed: that is a new canonical form
(docs/integrity.md), never a silent change.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any


class Kind(Enum):
    """How a field is held, hashed, stored and shown."""

    UUID = "uuid"  # uuid.UUID; canonical and API text: lowercase hyphenated
    SEQUENCE = "bigint"  # int; a JSON number
    TEXT = "text"  # str, "" when unset
    JSON = "jsonb"  # dict (a JSON object), {} when unset
    TIMESTAMP = "timestamptz"  # aware datetime; RFC 3339 UTC with six fractional digits
    HASH = "bytea"  # 32 raw bytes; lowercase hex in the API and exports; not hashed itself
    VERSION = "smallint"  # the canonical form a row is hashed by (int); not hashed itself

    @property
    def sql_type(self) -> str:
        return self.value


@dataclass(frozen=True)
class Field:
    name: str
    kind: Kind
    client: bool  # supplied by the client (NewEvent); otherwise assigned by the sequencer
    max_length: int | None = None  # a single-line text checked for length and control characters
    required: bool = False  # a client field that must be non-empty
    filter: bool = False  # an exact-match filter of list, search and export
    nullable: bool = False  # None when unset (else "" / {})
    since: int = 1  # the first canonical form version whose object holds the field

    @property
    def hashed(self) -> bool:
        return self.kind not in (Kind.HASH, Kind.VERSION)


# In the order of the table's columns (COPY, INSERT and SELECT use it).
FIELDS: tuple[Field, ...] = (
    Field("id", Kind.UUID, client=False),
    Field("sequence", Kind.SEQUENCE, client=False),
    Field("event_type", Kind.TEXT, client=True, max_length=128, required=True, filter=True),
    Field("user_id", Kind.TEXT, client=True, max_length=256, filter=True),
    Field("action", Kind.TEXT, client=True, max_length=128, required=True, filter=True),
    Field("resource_type", Kind.TEXT, client=True, max_length=128, filter=True),
    Field("resource_id", Kind.TEXT, client=True, max_length=256, filter=True),
    Field("details", Kind.JSON, client=True),
    Field("risk_level", Kind.TEXT, client=True, filter=True),  # one of RISK_LEVELS (validation)
    Field("ip_address", Kind.TEXT, client=True, filter=True),  # an IP address, normalised (validation)
    Field("user_agent", Kind.TEXT, client=True, max_length=1024),
    Field("session_id", Kind.TEXT, client=True, max_length=256),
    Field("request_id", Kind.TEXT, client=True, max_length=128),
    Field("occurred_at", Kind.TIMESTAMP, client=True, nullable=True),
    Field("recorded_at", Kind.TIMESTAMP, client=False),
    # The principal that wrote the event ("" with auth off); given by the server, not the client.
    Field("recorded_by", Kind.TEXT, client=False, since=2),
    Field("leaf_hash", Kind.HASH, client=False),
    Field("prev_hash", Kind.HASH, client=False),
    Field("chain_hash", Kind.HASH, client=False),
    # Which canonical form (docs/integrity.md) the row's leaf hash covers: 1 or CANONICAL_VERSION.
    Field("canonical_version", Kind.VERSION, client=False),
)
# The canonical form new events are hashed by.
CANONICAL_VERSION = 2

BY_NAME: dict[str, Field] = {f.name: f for f in FIELDS}
NAMES: tuple[str, ...] = tuple(f.name for f in FIELDS)
CLIENT_NAMES: tuple[str, ...] = tuple(f.name for f in FIELDS if f.client)
HASH_NAMES: tuple[str, ...] = tuple(f.name for f in FIELDS if f.kind is Kind.HASH)
# The canonical document's members in RFC 8785 order (keys sorted by UTF-16 code units), by version.
CANONICAL_FIELDS_BY_VERSION: dict[int, tuple[Field, ...]] = {
    version: tuple(
        sorted(
            (f for f in FIELDS if f.hashed and f.since <= version), key=lambda f: f.name.encode("utf-16-be")
        )
    )
    for version in range(1, CANONICAL_VERSION + 1)
}
CANONICAL_FIELDS: tuple[Field, ...] = CANONICAL_FIELDS_BY_VERSION[CANONICAL_VERSION]
CANONICAL_NAMES: tuple[str, ...] = tuple(f.name for f in CANONICAL_FIELDS)
TEXT_LIMITS: dict[str, int] = {f.name: f.max_length for f in FIELDS if f.max_length is not None}
REQUIRED_NAMES: tuple[str, ...] = tuple(f.name for f in FIELDS if f.required)
FILTER_NAMES: tuple[str, ...] = tuple(f.name for f in FIELDS if f.filter)

# Export tables: position and time first (recorded before occurred), then the texts (recorded_by,
# then the client's), then details, then the canonical form version and the hashes it covers.
_TABLE_RANK = {
    Kind.SEQUENCE: 0,
    Kind.UUID: 1,
    Kind.TIMESTAMP: 2,
    Kind.TEXT: 3,
    Kind.JSON: 4,
    Kind.VERSION: 5,
    Kind.HASH: 6,
}
TABLE_FIELDS: tuple[Field, ...] = tuple(sorted(FIELDS, key=lambda f: (_TABLE_RANK[f.kind], f.client)))

# A stored event read by name, in column order (the verifier's and the search's rows; the storage
# fills it with the column values in the form each reader asks for).
EventRow: Any = namedtuple("EventRow", NAMES)  # type: ignore[misc]


def compile_function(name: str, source: str, namespace: dict[str, Any]) -> Any:
    """The function called name defined by source (generated from FIELDS at import), with namespace
    as its globals: how the per-event fast paths spell every field without a loop at run time."""
    exec(compile(source, f"<auditlog.schema {name}>", "exec"), namespace)  # noqa: S102
    return namespace[name]


def values_by_kind(
    name: str, fields: Sequence[Field], converters: Mapping[Kind, Callable[[Any], Any]]
) -> Callable[[Any], list[Any]]:
    """A function (called name) giving a record's values of fields in their order, each passed
    through its kind's converter, unchanged when its kind has none: one record in the form one
    reader (the verifier, the search stream, an export file) takes."""
    namespace = {f"_{kind.name}": convert for kind, convert in converters.items()}
    values = ", ".join(
        f"_{f.kind.name}(record.{f.name})" if f.kind in converters else f"record.{f.name}" for f in fields
    )
    function: Callable[[Any], list[Any]] = compile_function(
        name, f"def {name}(record):\n    return [{values}]\n", namespace
    )
    return function


def optional(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """convert for a field that may be None (occurred_at): None stays None."""
    return lambda value: None if value is None else convert(value)
