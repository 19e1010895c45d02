"""JSON export: one UTF-8 document, written as a stream.

    {"format": "auditlog.export.v1", "metadata": {...}, "hashing": {...}, "evidence": {...},
    "events": [
    {...one event per line...}
    ]}

Each event object holds exactly the fields the canonical form hashes plus leaf_hash, prev_hash and
chain_hash, so anyone can recompute every hash from the file alone (see `hashing`). With evidence
(a server's exports), `evidence.checkpoint` is the signed checkpoint the export was made against and
each event also carries its `inclusion_proof` in that checkpoint's tree.
"""

from __future__ import annotations

import json
from base64 import b64encode
from pathlib import Path
from typing import IO, Any

from auditlog.domain.event import EventRecord
from auditlog.export.evidence import Prover, evidence_header
from auditlog.export.fields import event_object
from auditlog.export.metadata import ExportMetadata
from auditlog.storage.postgres.tree import StoredCheckpoint

FORMAT_NAME = "auditlog.export.v1"
HASHING = {
    "canonical_bytes": "RFC 8785 (JCS) serialisation of the event object without leaf_hash, prev_hash, "
    "chain_hash and inclusion_proof",
    "leaf_hash": "SHA-256(0x00 || canonical bytes), lowercase hex",
    "chain_hash": "SHA-256(prev_hash || leaf_hash) over the raw 32-byte values, lowercase hex; the "
    "prev_hash of sequence 0 is 32 zero bytes; prev_hash of event n is the chain_hash of event n-1",
}


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


class JsonExportWriter:
    def __init__(
        self,
        path: Path,
        metadata: ExportMetadata,
        evidence: tuple[StoredCheckpoint, Prover] | None = None,
    ) -> None:
        self._file: IO[str] = path.open("w", encoding="utf-8", newline="\n")
        self._first = True
        self._prove = None if evidence is None else evidence[1]
        shown = "" if evidence is None else f'"evidence":{_dumps(evidence_header(evidence[0]))},\n'
        self._file.write(
            f'{{"format":{_dumps(FORMAT_NAME)},\n"metadata":{_dumps(metadata.as_dict())},\n'
            f'"hashing":{_dumps(HASHING)},\n{shown}"events":['
        )

    def write(self, record: EventRecord) -> None:
        shown = event_object(record)
        if self._prove is not None:
            shown["inclusion_proof"] = [b64encode(h).decode("ascii") for h in self._prove(record.sequence)]
        self._file.write(("\n" if self._first else ",\n") + _dumps(shown))
        self._first = False

    def finish(self) -> None:
        self._file.write("\n]}\n")
        self._file.close()

    def close(self) -> None:
        self._file.close()
