"""Evidence that travels with an export (docs/integrity.md section 8): the signed checkpoint an
export is made against, each JSON event's inclusion proof in it, and the export's signed manifest.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from psycopg_pool import ConnectionPool

from auditlog.domain.merkle import inclusion_ranges
from auditlog.domain.notes import Signer, sign_note
from auditlog.storage.postgres.tree import StoredCheckpoint, TileCache, TreeReader, TreeSession

MANIFEST_FORMAT = "auditlog.export-manifest.v1"
MANIFEST_SUFFIX = ".manifest"
MANIFEST_TYPE = "text/plain; charset=utf-8"
# Tiles one export keeps: proofs of consecutive events share all but their lowest hashes.
_EXPORT_TILES = 64


class NoCheckpointError(Exception):
    """No signed checkpoint covers the export's events within the wait."""


Prover = Callable[[int], list[bytes]]


@dataclass(frozen=True)
class Manifest:
    file_name: str
    file_sha256: str
    file_size: int
    rows: int
    filters: dict[str, str]
    checkpoint: StoredCheckpoint

    def body(self, origin: str) -> str:
        """The note text: one `key value` line each; the file name and filters as JSON strings
        (ASCII), so that no name can add a line."""
        lines = [
            MANIFEST_FORMAT,
            f"origin {origin}",
            f"file {json.dumps(self.file_name)}",
            f"sha256 {self.file_sha256}",
            f"size {self.file_size}",
            f"rows {self.rows}",
            f"filters {json.dumps(self.filters, sort_keys=True, separators=(',', ':'))}",
            f"checkpoint {self.checkpoint.tree_size} {base64.b64encode(self.checkpoint.root).decode()}",
        ]
        return "\n".join(lines) + "\n"


class ExportEvidence:
    """Checkpoints, proofs and manifests for the export runner, over the stored tree."""

    def __init__(
        self, pool: ConnectionPool, signer: Signer, *, wait: float = 30.0, poll: float = 0.1
    ) -> None:
        self._pool = pool
        self._signer = signer
        self._wait = wait
        self._poll = poll

    def checkpoint_covering(self, size: int, stopping: threading.Event) -> StoredCheckpoint:
        """The latest signed checkpoint once its tree has at least size leaves (the integrator
        signs within its interval); NoCheckpointError after the wait."""
        deadline = time.monotonic() + self._wait
        while True:
            with self._pool.connection() as conn:
                latest = TreeSession(conn, TileCache(1)).latest()
            if latest is not None and latest.tree_size >= size:
                return latest
            if time.monotonic() >= deadline or stopping.wait(self._poll):
                have = 0 if latest is None else latest.tree_size
                raise NoCheckpointError(
                    f"no signed checkpoint covers the export's {size} leaves yet (latest size {have})"
                )

    @contextmanager
    def prover(self, checkpoint: StoredCheckpoint) -> Iterator[Prover]:
        """prove(sequence): the inclusion proof of that leaf in the checkpoint's tree, on one
        connection held for the export; the hashes shared with the previous proof are reused."""
        with self._pool.connection() as conn:
            reader = TreeReader(conn, TileCache(_EXPORT_TILES))
            size = checkpoint.tree_size
            # Also sets the reader's tree size for range_hash; a tree that no longer matches the
            # signed root must not produce proofs.
            if reader.root(size) != checkpoint.root:
                raise RuntimeError(f"the stored tree of size {size} does not match its checkpoint")
            previous: dict[tuple[int, int], bytes] = {}

            def prove(sequence: int) -> list[bytes]:
                nonlocal previous
                ranges = inclusion_ranges(sequence, size)
                proof = [previous.get(r) or reader.range_hash(*r) for r in ranges]
                previous = dict(zip(ranges, proof, strict=True))
                return proof

            yield prove

    def manifest(self, manifest: Manifest) -> str:
        return sign_note(manifest.body(self._signer.name), [self._signer])


def evidence_header(checkpoint: StoredCheckpoint) -> dict[str, Any]:
    """The JSON export's `evidence` object."""
    return {
        "checkpoint": checkpoint.note,
        "inclusion_proof": "each event's RFC 9162 inclusion proof of its leaf_hash (leaf index = "
        "sequence) in the checkpoint's tree, base64 hashes, leaf to root",
    }
