"""Offline verification of what an auditlog server signs and proves, with only its verifier key.

Written apart from the server's code on purpose (docs/decisions.md): the client checks the server
with a second implementation of the same public formats (docs/integrity.md, "Verifiable log"):
C2SP signed notes (Ed25519), tlog-checkpoint bodies, tlog-proof files, and RFC 9162 Merkle proofs,
recomputed here from the recursive definitions of PATH and PROOF.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

_DASH = "\u2014 "
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,19}")
_MAX_TEXT = 1 << 20
# The event fields the canonical form hashes besides details and the position fields.
_TEXT_FIELDS = (
    "event_type",
    "user_id",
    "action",
    "resource_type",
    "resource_id",
    "risk_level",
    "ip_address",
    "user_agent",
    "session_id",
    "request_id",
)


class VerificationError(Exception):
    """Something a verifier refuses; the message is one line naming what failed."""


@dataclass(frozen=True, slots=True)
class VerifierKey:
    name: str
    key_id: bytes
    public_key: bytes

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    """A checkpoint whose signature by the log's key was verified, with the note it came in."""

    origin: str
    size: int
    root: bytes
    note: str


def _b64(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise VerificationError(f"{what} is not base64") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise VerificationError(f"{what} is not canonical base64")
    return raw


def _name_ok(name: str) -> bool:
    return bool(name) and "+" not in name and not any(c.isspace() or ord(c) < 0x20 for c in name)


def parse_verifier_key(vkey: str) -> VerifierKey:
    """`<name>+<8 hex key ID>+<base64(0x01 || Ed25519 public key)>`, with its key ID checked."""
    name, _, rest = vkey.strip().partition("+")
    hex_id, _, encoded = rest.partition("+")
    if not _name_ok(name) or not re.fullmatch(r"[0-9a-f]{8}", hex_id) or not encoded:
        raise VerificationError("the verifier key is malformed, want <name>+<8 hex>+<base64>")
    raw = _b64(encoded, "the verifier key")
    if len(raw) != 33 or raw[0] != 1:
        raise VerificationError("the verifier key is not an Ed25519 key")
    key_id = hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4]
    if key_id.hex() != hex_id:
        raise VerificationError("the verifier key's ID does not match its key")
    return VerifierKey(name, key_id, raw[1:])


def open_note(note: str, key: VerifierKey) -> str:
    """The text of a C2SP signed note that key signed; signatures by other keys are ignored."""
    if len(note) > _MAX_TEXT or any(ord(c) < 0x20 and c != "\n" for c in note):
        raise VerificationError("the note is too large or holds control characters")
    try:
        note.encode("utf-8")
    except UnicodeEncodeError:
        raise VerificationError("the note is not valid Unicode text") from None
    text, separator, signatures = note.rpartition("\n\n")
    if not separator or not signatures.endswith("\n"):
        raise VerificationError("the note has no signature block")
    text += "\n"
    signed = False
    for line in signatures[:-1].split("\n"):
        name, _, encoded = line.removeprefix(_DASH).partition(" ")
        if not line.startswith(_DASH) or not _name_ok(name):
            raise VerificationError("the note has a malformed signature line")
        raw = _b64(encoded, "a note signature")
        if len(raw) < 5:
            raise VerificationError("the note has a malformed signature line")
        if name != key.name or raw[:4] != key.key_id:
            continue
        if not key.verify(text.encode("utf-8"), raw[4:]):
            raise VerificationError(f"the signature by {key.name} does not verify")
        signed = True
    if not signed:
        raise VerificationError(f"the note is not signed by {key.name}+{key.key_id.hex()}")
    return text


def open_checkpoint(note: str, key: VerifierKey) -> SignedCheckpoint:
    """A C2SP tlog-checkpoint signed by key, whose origin is the key's name."""
    lines = open_note(note, key)[:-1].split("\n")
    if len(lines) < 3 or not all(lines):
        raise VerificationError("the checkpoint does not have origin, size and root lines")
    origin, size, root = lines[:3]
    if origin != key.name:
        raise VerificationError(f"the checkpoint's origin {origin!r} is not the key's name {key.name!r}")
    if not _DECIMAL.fullmatch(size) or int(size) >= 1 << 64:
        raise VerificationError("the checkpoint's size is not a decimal number")
    raw_root = _b64(root, "the checkpoint's root")
    if len(raw_root) != 32:
        raise VerificationError("the checkpoint's root is not 32 bytes")
    return SignedCheckpoint(origin, int(size), raw_root, note)


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _largest_power_below(n: int) -> int:
    power = 1
    while power * 2 < n:
        power *= 2
    return power


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root that proof leads to from leaf at index, walking RFC 9162's PATH: each proof hash
    is the sibling subtree at one split, innermost first."""
    if not 0 <= index < size:
        raise VerificationError(f"index {index} is not in a tree of size {size}")
    sides = []  # True: the leaf is in the left part at this split
    lo, hi = 0, size
    while hi - lo > 1:
        k = _largest_power_below(hi - lo)
        sides.append(index < lo + k)
        lo, hi = (lo, lo + k) if index < lo + k else (lo + k, hi)
    if len(proof) != len(sides):
        raise VerificationError(f"the inclusion proof has {len(proof)} hashes, want {len(sides)}")
    node = leaf
    for left, sibling in zip(reversed(sides), proof, strict=True):
        node = _node(node, sibling) if left else _node(sibling, node)
    return node


def check_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> None:
    if root_from_inclusion(index, size, leaf, proof) != root:
        raise VerificationError(f"entry {index} is not in the tree of size {size}: the proof does not match")


def check_consistency(size1: int, root1: bytes, size2: int, root2: bytes, proof: Sequence[bytes]) -> None:
    """That the tree (size1, root1) is a prefix of (size2, root2), walking RFC 9162's SUBPROOF."""
    if size1 > size2:
        raise VerificationError(f"size {size2} is smaller than the earlier size {size1}: a rollback")
    if size1 == size2 or size1 == 0:
        if proof:
            raise VerificationError(f"the consistency proof has {len(proof)} hashes, want 0")
        if size1 == size2 and root1 != root2:
            raise VerificationError(f"two different roots for the same size {size1}: a fork")
        return
    steps = []  # (old tree inside the left part, the part the proof hash stands for is right)
    lo, hi, whole = 0, size2, True
    while size1 != hi:
        k = _largest_power_below(hi - lo)
        if size1 <= lo + k:
            steps.append(True)
            hi = lo + k
        else:
            steps.append(False)
            lo, whole = lo + k, False
    want = len(steps) + (0 if whole else 1)
    if len(proof) != want:
        raise VerificationError(f"the consistency proof has {len(proof)} hashes, want {want}")
    hashes = list(proof)
    old = new = root1 if whole else hashes.pop(0)
    for old_on_left, sibling in zip(reversed(steps), hashes, strict=True):
        if old_on_left:
            new = _node(new, sibling)
        else:
            old, new = _node(sibling, old), _node(sibling, new)
    if old != root1 or new != root2:
        raise VerificationError(f"the tree of size {size2} does not extend the tree of size {size1}: a fork")


@dataclass(frozen=True, slots=True)
class ProofFile:
    index: int
    proof: tuple[bytes, ...]
    checkpoint_note: str
    extra: bytes | None


def parse_proof_file(text: str) -> ProofFile:
    """A C2SP tlog-proof file (c2sp.org/tlog-proof@v1)."""
    head, separator, checkpoint = text.partition("\n\n")
    lines = head.split("\n")
    if not separator or lines[0] != "c2sp.org/tlog-proof@v1":
        raise VerificationError("not a c2sp.org/tlog-proof@v1 file")
    extra = None
    if len(lines) > 1 and lines[1].startswith("extra "):
        extra = _b64(lines.pop(1).removeprefix("extra "), "the proof's extra line")
    if len(lines) < 2 or not lines[1].startswith("index "):
        raise VerificationError("the proof file has no index line")
    index = lines[1].removeprefix("index ")
    if not _DECIMAL.fullmatch(index) or int(index) >= 1 << 64:
        raise VerificationError("the proof file's index is not a decimal number")
    proof = tuple(_b64(line, "a proof hash") for line in lines[2:])
    if len(proof) > 64 or any(len(h) != 32 for h in proof):
        raise VerificationError("the proof file's hashes are not 32-byte hashes")
    return ProofFile(int(index), proof, checkpoint, extra)


def parse_hash_lines(text: str) -> list[bytes]:
    """A consistency proof file: base64 hashes one a line (none for an empty proof)."""
    hashes = [_b64(line.strip(), "a proof hash") for line in text.splitlines() if line.strip()]
    if len(hashes) > 128 or any(len(h) != 32 for h in hashes):
        raise VerificationError("the proof's hashes are not 32-byte hashes")
    return hashes


def _timestamp(value: Any, name: str) -> str:
    """An RFC 3339 UTC time as the canonical form writes it: six fractional digits and Z."""
    if not isinstance(value, str):
        raise VerificationError(f"the event's {name} is not an RFC 3339 time")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise VerificationError(f"the event's {name} is not an RFC 3339 time") from None
    if moment.tzinfo is None:
        raise VerificationError(f"the event's {name} has no UTC offset")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def _as_double(value: Any) -> Any:
    """details numbers are IEEE doubles in the canonical form (-0 as 0)."""
    if isinstance(value, dict):
        return {key: _as_double(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_as_double(item) for item in value]
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
        if not math.isfinite(number):
            raise VerificationError("the event's details hold a number that is not finite")
        return number + 0.0
    return value


def event_leaf_hash(event: dict[str, Any]) -> bytes:
    """The leaf hash of an event as the API or a JSON export shows it (proto3 JSON: sequence
    possibly a string, unset fields possibly absent, any number of fractional second digits):
    SHA-256(0x00 || RFC 8785 of the canonical object of docs/integrity.md)."""
    if not isinstance(event, dict):
        raise VerificationError("the event is not a JSON object")
    sequence = event.get("sequence", 0)
    if isinstance(sequence, str) and _DECIMAL.fullmatch(sequence):
        sequence = int(sequence)
    if type(sequence) is not int or sequence < 0:
        raise VerificationError("the event's sequence is not a non-negative integer")
    if not isinstance(event.get("id"), str) or not event.get("recorded_at"):
        raise VerificationError("the event has no id or recorded_at")
    details = event.get("details") or {}
    if not isinstance(details, dict):
        raise VerificationError("the event's details are not a JSON object")
    canonical: dict[str, Any] = {name: event.get(name, "") for name in _TEXT_FIELDS}
    for name, value in canonical.items():
        if not isinstance(value, str):
            raise VerificationError(f"the event's {name} is not a string")
    occurred_at = event.get("occurred_at")
    canonical.update(
        id=event["id"].lower(),
        sequence=sequence,
        details=_as_double(details),
        recorded_at=_timestamp(event["recorded_at"], "recorded_at"),
        occurred_at=None if occurred_at is None else _timestamp(occurred_at, "occurred_at"),
    )
    try:
        data = bytes(rfc8785.dumps(canonical))
    except (rfc8785.CanonicalizationError, ValueError, TypeError) as err:
        raise VerificationError(f"the event cannot be put in canonical form ({type(err).__name__})") from None
    return hashlib.sha256(b"\x00" + data).digest()


def load_event(text: str) -> dict[str, Any]:
    """The event object of a JSON file."""
    try:
        value = json.loads(text)
    except ValueError:
        raise VerificationError("the event file is not JSON") from None
    if not isinstance(value, dict):
        raise VerificationError("the event file is not a JSON object")
    return value
