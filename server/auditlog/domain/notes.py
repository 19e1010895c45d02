"""Signed notes, checkpoints and proof files in the open formats: C2SP signed-note (Ed25519, with
the Go `note` key strings), C2SP tlog-checkpoint and C2SP tlog-proof.

A note is text ending in a newline, an empty line, then one line per signature:
`— <key name> <base64(4-byte key ID || Ed25519 signature of the text)>`.
Key ID = SHA-256(key name || 0x0A || 0x01 || 32-byte public key)[:4].
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ED25519 = b"\x01"
SIGNATURE_PREFIX = "— "  # em dash U+2014 and a space
SIGNER_PREFIX = "PRIVATE+KEY+"
TLOG_PROOF_HEADER = "c2sp.org/tlog-proof@v1"
# A verifier must accept 16 signatures; more than this many is refused as malformed.
MAX_SIGNATURES = 100
MAX_NOTE_BYTES = 1 << 20
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,19}")
_KEY_ID = re.compile(r"[0-9a-f]{8}")


class NoteError(ValueError):
    """A note, key, checkpoint or proof file that is malformed or not signed by a known key."""


def _b64decode(text: str, what: str) -> bytes:
    """Strict standard base64: only the canonical encoding of the bytes is accepted."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise NoteError(f"{what}: got malformed base64") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise NoteError(f"{what}: got a non-canonical base64 encoding")
    return raw


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def valid_name(name: str) -> bool:
    """A key name the spec allows: non-empty, no Unicode space, no plus, no control character."""
    return (
        isinstance(name, str)
        and name != ""
        and "+" not in name
        and not any(c.isspace() or ord(c) < 0x20 or c == "\x7f" for c in name)
    )


def key_id(name: str, public_key: bytes) -> bytes:
    """The 4-byte key ID of an Ed25519 key: SHA-256(name || 0x0A || 0x01 || public key)[:4]."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + ED25519 + public_key).digest()[:4]


def _check_name(name: str) -> None:
    if not valid_name(name):
        raise NoteError(f"key name: got {name!r}, want non-empty, without spaces or '+'")


@dataclass(frozen=True)
class Verifier:
    """An Ed25519 verifier key: `<name>+<8 hex key ID>+<base64(0x01 || public key)>`."""

    name: str
    key_id: bytes
    public_key: bytes
    _key: Ed25519PublicKey = field(repr=False, compare=False)

    @classmethod
    def from_public_key(cls, name: str, public_key: bytes) -> Verifier:
        _check_name(name)
        if len(public_key) != 32:
            raise NoteError(f"public key: got {len(public_key)} bytes, want 32")
        return cls(name, key_id(name, public_key), public_key, Ed25519PublicKey.from_public_bytes(public_key))

    @classmethod
    def from_key(cls, vkey: str) -> Verifier:
        """Parse a verifier key string; NoteError unless it is well formed and its ID matches."""
        parts = vkey.split("+", 2) if isinstance(vkey, str) else []
        if len(parts) != 3 or not _KEY_ID.fullmatch(parts[1]):
            raise NoteError("verifier key: got a malformed key, want <name>+<8 hex>+<base64 key>")
        name, hex_id, encoded = parts
        _check_name(name)
        raw = _b64decode(encoded, "verifier key")
        if len(raw) != 33 or raw[:1] != ED25519:
            raise NoteError("verifier key: got an unsupported key, want Ed25519 (type 0x01, 32 bytes)")
        verifier = cls.from_public_key(name, raw[1:])
        if verifier.key_id.hex() != hex_id:
            raise NoteError(f"verifier key: got key ID {hex_id}, want {verifier.key_id.hex()} for this key")
        return verifier

    def key(self) -> str:
        return f"{self.name}+{self.key_id.hex()}+{_b64(ED25519 + self.public_key)}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            self._key.verify(signature, message)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class Signer:
    """An Ed25519 signing key with its name, in the Go `note` signer format
    `PRIVATE+KEY+<name>+<8 hex key ID>+<base64(0x01 || 32-byte seed)>`."""

    name: str
    key_id: bytes
    _seed: bytes = field(repr=False)
    _key: Ed25519PrivateKey = field(repr=False, compare=False)

    @classmethod
    def from_seed(cls, name: str, seed: bytes) -> Signer:
        _check_name(name)
        if len(seed) != 32:
            raise NoteError(f"signer key: got a {len(seed)}-byte seed, want 32")
        private = Ed25519PrivateKey.from_private_bytes(seed)
        public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return cls(name, key_id(name, public), seed, private)

    @classmethod
    def from_key(cls, skey: str) -> Signer:
        """Parse a signer key string; NoteError (never echoing the key) unless it is well formed
        and its key ID matches its key."""
        if not isinstance(skey, str) or not skey.startswith(SIGNER_PREFIX):
            raise NoteError("signer key: got a malformed key, want PRIVATE+KEY+<name>+<8 hex>+<base64>")
        parts = skey[len(SIGNER_PREFIX) :].split("+", 2)
        if len(parts) != 3 or not _KEY_ID.fullmatch(parts[1]):
            raise NoteError("signer key: got a malformed key, want PRIVATE+KEY+<name>+<8 hex>+<base64>")
        name, hex_id, encoded = parts
        _check_name(name)
        try:
            raw = _b64decode(encoded, "signer key")
        except NoteError:
            raise NoteError("signer key: got malformed base64") from None
        if len(raw) != 33 or raw[:1] != ED25519:
            raise NoteError("signer key: got an unsupported key, want Ed25519 (type 0x01, 32-byte seed)")
        signer = cls.from_seed(name, raw[1:])
        if signer.key_id.hex() != hex_id:
            raise NoteError("signer key: got a key ID that does not match the key")
        return signer

    def public_key(self) -> bytes:
        return self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    def verifier(self) -> Verifier:
        return Verifier.from_public_key(self.name, self.public_key())

    def verifier_key(self) -> str:
        return self.verifier().key()

    def signer_key(self) -> str:
        return f"{SIGNER_PREFIX}{self.name}+{self.key_id.hex()}+{_b64(ED25519 + self._seed)}"


def generate_signer(name: str) -> Signer:
    """A new random Ed25519 signer named name."""
    private = Ed25519PrivateKey.generate()
    return Signer.from_seed(name, private.private_bytes_raw())


def _check_note_characters(text: str, what: str) -> None:
    """Valid UTF-8 and no control character other than newline, as the spec requires."""
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise NoteError(f"{what}: got a control character, want only newlines")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise NoteError(f"{what}: got text that is not valid UTF-8") from None


def sign_note(text: str, signers: Sequence[Signer]) -> str:
    """The signed note of text (which must end in a newline) with one signature line per signer."""
    if not isinstance(text, str) or not text.endswith("\n"):
        raise NoteError("note text: got text without a final newline, want it to end in one")
    _check_note_characters(text, "note text")
    if not signers:
        raise NoteError("signers: got none, want at least one")
    message = text.encode("utf-8")
    lines = [f"{SIGNATURE_PREFIX}{s.name} {_b64(s.key_id + s.sign(message))}\n" for s in signers]
    return text + "\n" + "".join(lines)


@dataclass(frozen=True, slots=True)
class Note:
    """A note whose signatures were checked: its text and the names of the known keys that
    signed it (signatures by unknown keys are ignored)."""

    text: str
    verified_by: tuple[str, ...]


def open_note(note: str | bytes, verifiers: Iterable[Verifier]) -> Note:
    """Check a signed note against the known verifier keys; NoteError if it is malformed, if a
    known key's signature fails, or if no known key signed it."""
    if isinstance(note, bytes):
        if len(note) > MAX_NOTE_BYTES:
            raise NoteError(f"note: got {len(note)} bytes, want at most {MAX_NOTE_BYTES}")
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError:
            raise NoteError("note: got bytes that are not valid UTF-8") from None
    if not isinstance(note, str) or len(note) > MAX_NOTE_BYTES:
        raise NoteError(f"note: got more than {MAX_NOTE_BYTES} bytes")
    _check_note_characters(note, "note")
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n") or split + 2 == len(note):
        raise NoteError("note: got no signature block, want the text, an empty line, then signatures")
    text, block = note[: split + 1], note[split + 2 : -1]
    known: dict[tuple[str, bytes], Verifier] = {}
    for verifier in verifiers:
        other = known.setdefault((verifier.name, verifier.key_id), verifier)
        if other.public_key != verifier.public_key:
            raise NoteError(f"verifiers: two different keys named {verifier.name}+{verifier.key_id.hex()}")
    lines = block.split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"note: got {len(lines)} signatures, want at most {MAX_SIGNATURES}")
    message = text.encode("utf-8")
    verified: list[str] = []
    seen: set[tuple[str, bytes]] = set()
    for number, line in enumerate(lines, 1):
        name, _, encoded = line.removeprefix(SIGNATURE_PREFIX).partition(" ")
        if not line.startswith(SIGNATURE_PREFIX) or not valid_name(name):
            raise NoteError(f"note: signature line {number} is malformed, want '— <key name> <base64>'")
        raw = _b64decode(encoded, f"note: signature line {number}")
        if len(raw) < 5:
            raise NoteError(f"note: signature line {number} is too short")
        signed_by = known.get((name, raw[:4]))
        if signed_by is None or (name, raw[:4]) in seen:
            continue
        seen.add((name, raw[:4]))
        if not signed_by.verify(message, raw[4:]):
            raise NoteError(f"note: the signature by {name}+{raw[:4].hex()} does not verify")
        if name not in verified:
            verified.append(name)
    if not verified:
        raise NoteError("note: no known key signed it")
    return Note(text, tuple(verified))


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A C2SP tlog-checkpoint: origin, tree size and root hash, then optional extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.origin, str) or not self.origin or "\n" in self.origin:
            raise NoteError(f"checkpoint origin: got {self.origin!r}, want one non-empty line")
        if type(self.size) is not int or not 0 <= self.size < 1 << 64:
            raise NoteError(f"checkpoint size: got {self.size!r}, want 0 to 2^64-1")
        if not isinstance(self.root, bytes) or len(self.root) != 32:
            raise NoteError("checkpoint root: want a 32-byte hash")
        for line in self.extensions:
            if not isinstance(line, str) or not line or "\n" in line:
                raise NoteError(f"checkpoint extension: got {line!r}, want one non-empty line")

    def body(self) -> str:
        """The note text: origin, size, base64 root and extensions, one a line."""
        lines = [self.origin, str(self.size), _b64(self.root), *self.extensions]
        return "".join(line + "\n" for line in lines)


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse a checkpoint body strictly (decimal size without leading zeros, canonical base64 of
    a 32-byte root, non-empty lines, final newline)."""
    if not isinstance(text, str) or not text.endswith("\n"):
        raise NoteError("checkpoint: got text without a final newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3 or any(not line for line in lines):
        raise NoteError("checkpoint: got fewer than three lines or an empty line, want origin, size, root")
    origin, size, root, *extensions = lines
    if not _DECIMAL.fullmatch(size) or int(size) >= 1 << 64:
        raise NoteError(f"checkpoint size: got {size[:24]!r}, want a decimal without leading zeros")
    raw = _b64decode(root, "checkpoint root")
    if len(raw) != 32:
        raise NoteError(f"checkpoint root: got {len(raw)} bytes, want 32")
    return Checkpoint(origin, int(size), raw, tuple(extensions))


def open_checkpoint(note: str | bytes, verifiers: Iterable[Verifier]) -> Checkpoint:
    """A signed checkpoint, checked: signed by a known key whose name is the checkpoint's origin."""
    known = list(verifiers)
    opened = open_note(note, known)
    checkpoint = parse_checkpoint(opened.text)
    if checkpoint.origin not in opened.verified_by:
        raise NoteError(f"checkpoint: origin {checkpoint.origin!r} is not the name of a key that signed it")
    return checkpoint


@dataclass(frozen=True, slots=True)
class TlogProof:
    """A C2SP tlog-proof file: the entry's index, its inclusion proof and the signed checkpoint."""

    index: int
    proof: tuple[bytes, ...]
    checkpoint: str
    extra: bytes | None = None


def format_tlog_proof(
    index: int, proof: Sequence[bytes], signed_checkpoint: str, extra: bytes | None = None
) -> str:
    """The tlog-proof file of leaf index with its inclusion proof against signed_checkpoint."""
    if type(index) is not int or not 0 <= index < 1 << 64:
        raise NoteError(f"index: got {index!r}, want 0 to 2^64-1")
    if any(len(h) != 32 for h in proof):
        raise NoteError("proof: want 32-byte hashes")
    lines = [TLOG_PROOF_HEADER]
    if extra is not None:
        lines.append(f"extra {_b64(extra)}")
    lines.append(f"index {index}")
    lines.extend(_b64(h) for h in proof)
    return "\n".join(lines) + "\n\n" + signed_checkpoint


def parse_tlog_proof(text: str | bytes) -> TlogProof:
    """Parse a tlog-proof file (the checkpoint is returned verbatim, still to be opened)."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise NoteError("tlog-proof: got bytes that are not valid UTF-8") from None
    if not isinstance(text, str) or len(text) > MAX_NOTE_BYTES:
        raise NoteError("tlog-proof: got more than the size limit")
    head, separator, checkpoint = text.partition("\n\n")
    if not separator:
        raise NoteError("tlog-proof: got no empty line before the checkpoint")
    lines = head.split("\n")
    if lines[0] != TLOG_PROOF_HEADER:
        raise NoteError(f"tlog-proof: first line: want {TLOG_PROOF_HEADER}")
    position = 1
    extra = None
    if len(lines) > position and lines[position].startswith("extra "):
        extra = _b64decode(lines[position].removeprefix("extra "), "tlog-proof extra")
        position += 1
    if len(lines) <= position or not lines[position].startswith("index "):
        raise NoteError("tlog-proof: want an 'index <n>' line")
    index = lines[position].removeprefix("index ")
    if not _DECIMAL.fullmatch(index) or int(index) >= 1 << 64:
        raise NoteError("tlog-proof index: got a malformed number, want a decimal without leading zeros")
    hashes = lines[position + 1 :]
    if len(hashes) > 64:
        raise NoteError(f"tlog-proof: got {len(hashes)} proof hashes, want at most 64")
    proof = []
    for number, line in enumerate(hashes, 1):
        raw = _b64decode(line, f"tlog-proof hash {number}")
        if len(raw) != 32:
            raise NoteError(f"tlog-proof hash {number}: got {len(raw)} bytes, want 32")
        proof.append(raw)
    return TlogProof(int(index), tuple(proof), checkpoint, extra)
