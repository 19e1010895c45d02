"""JSON export: one UTF-8 document, written as a stream.

    {"format": "auditlog.export.v1", "metadata": {...}, "hashing": {...}, "events": [
    {...one event per line...}
    ]}

Each event object holds exactly the fields the canonical form hashes plus leaf_hash, prev_hash and
chain_hash, so anyone can recompute every hash from the file alone (see `hashing`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any

from auditlog.domain.event import EventRecord
from auditlog.export.fields import event_object
from auditlog.export.metadata import ExportMetadata

FORMAT_NAME = "auditlog.export.v1"
HASHING = {
    "canonical_bytes": "RFC 8785 (JCS) serialisation of the event object without leaf_hash, prev_hash "
    "and chain_hash",
    "leaf_hash": "SHA-256(0x00 || canonical bytes), lowercase hex",
    "chain_hash": "SHA-256(prev_hash || leaf_hash) over the raw 32-byte values, lowercase hex; the "
    "prev_hash of sequence 0 is 32 zero bytes; prev_hash of event n is the chain_hash of event n-1",
}


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


class JsonExportWriter:
    def __init__(self, path: Path, metadata: ExportMetadata) -> None:
        self._file: IO[str] = path.open("w", encoding="utf-8", newline="\n")
        self._first = True
        self._file.write(
            f'{{"format":{_dumps(FORMAT_NAME)},\n"metadata":{_dumps(metadata.as_dict())},\n'
            f'"hashing":{_dumps(HASHING)},\n"events":['
        )

    def write(self, record: EventRecord) -> None:
        self._file.write(("\n" if self._first else ",\n") + _dumps(event_object(record)))
        self._first = False

    def finish(self) -> None:
        self._file.write("\n]}\n")
        self._file.close()

    def close(self) -> None:
        self._file.close()
