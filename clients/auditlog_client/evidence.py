"""Offline checks of an export: its signed manifest (docs/integrity.md section 8) and, in a JSON
export, every event's inclusion proof in the checkpoint the export was made against. One pass over
the file, one event in memory at a time."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from typing import IO, Any

from auditlog_client.verify import (
    VerificationError,
    VerifierKey,
    check_inclusion,
    event_leaf_hash,
    open_checkpoint,
    open_note,
)

MANIFEST_FORMAT = "auditlog.export-manifest.v1"
MANIFEST_SUFFIX = ".manifest"
_KEYS = ("origin", "file", "sha256", "size", "rows", "filters", "checkpoint")
_JSON_START = b'{"format":"auditlog.export.v1",'


@dataclass(frozen=True, slots=True)
class ExportManifest:
    origin: str
    file_name: str
    sha256: str
    size: int
    rows: int
    filters: dict[str, Any]
    tree_size: int
    root: bytes


@dataclass(frozen=True, slots=True)
class ExportCheck:
    # Events whose inclusion proof was checked; None for a file without proofs (CSV, XLSX, ...).
    proven: int | None


def _number(value: str, what: str) -> int:
    if not re.fullmatch(r"0|[1-9][0-9]{0,18}", value):
        raise VerificationError(f"the manifest's {what} is not a decimal number")
    return int(value)


def parse_manifest(note: str, key: VerifierKey) -> ExportManifest:
    """The manifest signed by key (the log's key), its lines in the order written."""
    try:
        text = open_note(note, key)
    except VerificationError as err:
        raise VerificationError(f"manifest: {err}") from None
    lines = text[:-1].split("\n")
    if len(lines) != len(_KEYS) + 1 or lines[0] != MANIFEST_FORMAT:
        raise VerificationError(f"the manifest is not an {MANIFEST_FORMAT} note")
    values = {}
    for want, line in zip(_KEYS, lines[1:], strict=True):
        name, _, value = line.partition(" ")
        if name != want:
            raise VerificationError(f"the manifest's line {name!r} is not {want!r}")
        values[name] = value
    if values["origin"] != key.name:
        raise VerificationError(f"the manifest's origin {values['origin']!r} is not the key's name")
    try:
        file_name = json.loads(values["file"])
        filters = json.loads(values["filters"])
    except ValueError:
        raise VerificationError("the manifest's file or filters are not JSON") from None
    if not isinstance(file_name, str) or not isinstance(filters, dict):
        raise VerificationError("the manifest's file is not a string or its filters not an object")
    if not re.fullmatch(r"[0-9a-f]{64}", values["sha256"]):
        raise VerificationError("the manifest's sha256 is not 64 hex digits")
    size, _, root = values["checkpoint"].partition(" ")
    try:
        raw_root = base64.b64decode(root, validate=True)
    except ValueError:
        raw_root = b""
    if len(raw_root) != 32:
        raise VerificationError("the manifest's checkpoint root is not 32 bytes of base64")
    return ExportManifest(
        origin=values["origin"],
        file_name=file_name,
        sha256=values["sha256"],
        size=_number(values["size"], "size"),
        rows=_number(values["rows"], "rows"),
        filters=filters,
        tree_size=_number(size, "checkpoint size"),
        root=raw_root,
    )


class _JsonEvents:
    """The JSON export's lines (as the server writes them: the header keys one a line, then one
    event a line), checked as they are read."""

    def __init__(self, manifest: ExportManifest, key: VerifierKey) -> None:
        self._manifest = manifest
        self._key = key
        self._in_events = False
        self._root: bytes | None = None
        self.proven = 0

    def line(self, raw: bytes, number: int) -> None:
        text = raw.decode("utf-8", errors="replace").rstrip("\n")
        if not self._in_events:
            if text.startswith('"evidence":'):
                self._evidence(text.removeprefix('"evidence":').removesuffix(","))
            elif text == '"events":[':
                if self._root is None:
                    raise VerificationError("the JSON export carries no evidence (no signed checkpoint)")
                self._in_events = True
            return
        if text == "]}":
            self._in_events = False
            return
        try:
            event = json.loads(text.removesuffix(","))
        except ValueError:
            raise VerificationError(
                f"line {number} is not a JSON event: the file is cut or altered"
            ) from None
        self._event(event)

    def _evidence(self, text: str) -> None:
        try:
            evidence = json.loads(text)
            note = evidence["checkpoint"]
        except (ValueError, KeyError, TypeError):
            raise VerificationError("the JSON export's evidence is not readable") from None
        try:
            checkpoint = open_checkpoint(note, self._key)
        except VerificationError as err:
            raise VerificationError(f"the export's checkpoint: {err}") from None
        if (checkpoint.size, checkpoint.root) != (self._manifest.tree_size, self._manifest.root):
            raise VerificationError("the export's checkpoint is not the one its manifest names")
        self._root = checkpoint.root

    def _event(self, event: Any) -> None:
        if not isinstance(event, dict):
            raise VerificationError("an event of the export is not a JSON object")
        label = f"event {event.get('id')} (sequence {event.get('sequence')})"
        leaf = event_leaf_hash(event)
        if str(event.get("leaf_hash", "")).lower() != leaf.hex():
            raise VerificationError(
                f"{label}: its fields do not hash to its leaf_hash: the event was altered"
            )
        proof = event.get("inclusion_proof")
        if not isinstance(proof, list) or not all(isinstance(h, str) for h in proof):
            raise VerificationError(f"{label}: no inclusion_proof")
        try:
            hashes = [base64.b64decode(h, validate=True) for h in proof]
        except ValueError:
            raise VerificationError(f"{label}: the inclusion_proof is not base64") from None
        root = self._root or b""  # set: events come after the evidence line
        try:
            check_inclusion(int(event["sequence"]), self._manifest.tree_size, leaf, hashes, root)
        except VerificationError as err:
            raise VerificationError(f"{label} is not in the export's checkpoint: {err}") from None
        self.proven += 1


def check_export_file(handle: IO[bytes], manifest: ExportManifest, key: VerifierKey) -> ExportCheck:
    """That the file is the one the manifest names (SHA-256 and size) and, for a JSON export, that
    every event is included in the checkpoint and their count is the manifest's rows."""
    digest = hashlib.sha256()
    size = 0
    first = handle.readline()
    events = _JsonEvents(manifest, key) if first.startswith(_JSON_START) else None
    raw, number = first, 1
    while raw:
        digest.update(raw)
        size += len(raw)
        if events is not None:
            events.line(raw, number)
        raw, number = handle.readline(), number + 1
    if events is not None and events.proven != manifest.rows:
        raise VerificationError(
            f"the export holds {events.proven} events, its manifest says {manifest.rows}: the file is cut"
        )
    if size != manifest.size or digest.hexdigest() != manifest.sha256:
        raise VerificationError(
            f"the file ({size} bytes) is not the one its manifest names ({manifest.size} bytes,"
            " SHA-256 differs): it was altered or cut"
        )
    return ExportCheck(None if events is None else events.proven)
