"""Signed notes, keys, checkpoints and tlog-proof files against the published examples, and notes
we sign checked by a second Ed25519 implementation (libsodium through PyNaCl)."""

from __future__ import annotations

import base64

import nacl.exceptions
import nacl.signing
import pytest

from auditlog.domain import merkle, notes
from auditlog.domain.notes import Checkpoint, NoteError, Signer, Verifier

# C2SP signed-note, "Verifier keys", example.
C2SP_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
C2SP_NOTE = (
    "This is an example message.\n\n— example.com/foo "
    "Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
)
# golang.org/x/mod sumdb/note note_test.go.
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
)
PETER_SIG = "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
ENOCH_SIG = "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"


def test_the_c2sp_example_note_verifies() -> None:
    note = notes.open_note(C2SP_NOTE, [Verifier.from_key(C2SP_VKEY)])
    assert note == notes.Note("This is an example message.\n", ("example.com/foo",))


def test_the_go_note_signer_key_signs_exactly_the_published_note() -> None:
    signer = Signer.from_key(PETER_SKEY)
    assert signer.verifier_key() == PETER_VKEY
    assert signer.signer_key() == PETER_SKEY
    assert notes.sign_note(GO_TEXT, [signer]) == GO_TEXT + "\n" + PETER_SIG


def test_go_notes_open_with_known_keys_only() -> None:
    peter, enoch = Verifier.from_key(PETER_VKEY), Verifier.from_key(ENOCH_VKEY)
    both = GO_TEXT + "\n" + PETER_SIG + ENOCH_SIG
    assert notes.open_note(both, [peter]).verified_by == ("PeterNeumann",)
    assert notes.open_note(both, [peter, enoch]).verified_by == ("PeterNeumann", "EnochRoot")
    assert notes.open_note(both.encode(), [enoch]).text == GO_TEXT
    with pytest.raises(NoteError, match="no known key signed it"):
        notes.open_note(both, [])
    with pytest.raises(NoteError, match="no known key signed it"):
        notes.open_note(both, [Verifier.from_key(C2SP_VKEY)])
    tampered = GO_TEXT + "\n" + PETER_SIG[:60] + "ABCD" + PETER_SIG[60:]
    with pytest.raises(NoteError, match="signature by PeterNeumann\\+c74f20a3 does not verify"):
        notes.open_note(tampered, [peter])
    with pytest.raises(NoteError, match="at most 100"):
        notes.open_note(GO_TEXT + "\n" + PETER_SIG * 101, [peter])


@pytest.mark.parametrize(
    "note",
    [
        GO_TEXT,
        GO_TEXT + "\n",
        GO_TEXT + "\n" + PETER_SIG[:-1],
        "\x01" + GO_TEXT + "\n" + PETER_SIG,
        GO_TEXT
        + "\n"
        + "— Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n",
        GO_TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
        GO_TEXT + "\n" + PETER_SIG.replace("—", "-"),
        GO_TEXT + "\n" + PETER_SIG.replace("=\n", "\n"),
    ],
)
def test_malformed_notes_are_refused(note: str) -> None:
    with pytest.raises(NoteError):
        notes.open_note(note, [Verifier.from_key(PETER_VKEY)])


def test_a_note_that_is_not_utf8_is_refused() -> None:
    with pytest.raises(NoteError, match="not valid UTF-8"):
        notes.open_note(b"\xff" + (GO_TEXT + "\n" + PETER_SIG).encode(), [Verifier.from_key(PETER_VKEY)])


def test_tampered_text_and_a_wrong_key_are_refused() -> None:
    signer = notes.generate_signer("auditlog.example/log")
    signed = notes.sign_note("hello\nworld\n", [signer])
    with pytest.raises(NoteError, match="does not verify"):
        notes.open_note(signed.replace("world", "World"), [signer.verifier()])
    impostor = notes.generate_signer("auditlog.example/log")
    # Same name, another key: its ID differs, so the signature is not by a known key.
    with pytest.raises(NoteError, match="no known key signed it"):
        notes.open_note(signed, [impostor.verifier()])
    # A signature by another key carrying our key's ID does not verify.
    forged = notes.sign_note("hello\nworld\n", [impostor])
    raw = base64.b64decode(forged.split(" ")[-1])
    relabelled = signed.rsplit(" ", 1)[0] + " " + base64.b64encode(signer.key_id + raw[4:]).decode() + "\n"
    with pytest.raises(NoteError, match="does not verify"):
        notes.open_note(relabelled, [signer.verifier()])


def test_notes_we_sign_verify_with_libsodium() -> None:
    signer = notes.generate_signer("auditlog.example/log")
    text = Checkpoint("auditlog.example/log", 1234, bytes(range(32))).body()
    signed = notes.sign_note(text, [signer])
    line = signed.rsplit("\n\n", 1)[1]
    name, encoded = line.removeprefix("— ").rstrip("\n").split(" ")
    raw = base64.b64decode(encoded)
    assert name == signer.name and raw[:4] == signer.key_id
    vkey = signer.verifier_key()
    public = base64.b64decode(vkey.split("+", 2)[2])[1:]
    nacl.signing.VerifyKey(public).verify(text.encode(), raw[4:])
    with pytest.raises(nacl.exceptions.BadSignatureError):
        nacl.signing.VerifyKey(public).verify(text.replace("1234", "1235").encode(), raw[4:])
    # And the other way: a libsodium key in the signer format signs what we verify.
    seed = bytes(range(1, 33))
    sodium = nacl.signing.SigningKey(seed)
    ours = Signer.from_seed("sodium.example", seed)
    assert ours.public_key() == bytes(sodium.verify_key)
    signature = sodium.sign(text.encode()).signature
    note = text + "\n— sodium.example " + base64.b64encode(ours.key_id + signature).decode() + "\n"
    assert notes.open_note(note, [Verifier.from_key(ours.verifier_key())]).verified_by == ("sodium.example",)


def test_key_strings_round_trip() -> None:
    signer = notes.generate_signer("log.example/a")
    again = Signer.from_key(signer.signer_key())
    assert again.signer_key() == signer.signer_key() and again.verifier_key() == signer.verifier_key()
    verifier = Verifier.from_key(signer.verifier_key())
    assert verifier.key() == signer.verifier_key()
    assert verifier.key_id == notes.key_id("log.example/a", verifier.public_key) == signer.key_id
    assert signer.verifier_key().startswith("log.example/a+" + signer.key_id.hex() + "+A")


def every_mangling(key: str) -> list[str]:
    """Every proper substring and every one-character increment of key (as note_test.go does)."""
    out = [
        key[i:j] for i in range(len(key) + 1) for j in range(i + 1, len(key) + 1) if (i, j) != (0, len(key))
    ]
    out += [key[:i] + chr(ord(key[i]) + 1) + key[i + 1 :] for i in range(len(key))]
    return out


def test_mangled_verifier_keys_are_refused() -> None:
    for mangled in every_mangling(PETER_VKEY):
        with pytest.raises(NoteError):
            Verifier.from_key(mangled)


def test_mangled_signer_keys_are_refused_without_echoing_them() -> None:
    for mangled in every_mangling(PETER_SKEY):
        with pytest.raises(NoteError) as caught:
            Signer.from_key(mangled)
        assert "AYEKFALV" not in str(caught.value)


def test_key_names_the_spec_forbids_are_refused() -> None:
    for name in ["", "a b", "a+b", "a\u00a0b", "a\nb"]:
        with pytest.raises(NoteError, match="key name"):
            notes.generate_signer(name)


def test_sign_note_requires_a_final_newline_and_no_control_characters() -> None:
    signer = notes.generate_signer("x")
    with pytest.raises(NoteError, match="final newline"):
        notes.sign_note("abc", [signer])
    with pytest.raises(NoteError, match="control character"):
        notes.sign_note("a\tb\n", [signer])


def test_checkpoint_body_round_trips() -> None:
    root = merkle.root_from_leaves([bytes(32)] * 3)
    checkpoint = Checkpoint("auditlog.example/log", 3, root, ("ext one",))
    body = checkpoint.body()
    assert body == f"auditlog.example/log\n3\n{base64.b64encode(root).decode()}\next one\n"
    assert notes.parse_checkpoint(body) == checkpoint
    empty = Checkpoint("o", 0, merkle.EMPTY_ROOT)
    assert notes.parse_checkpoint(empty.body()) == empty


ROOT64 = base64.b64encode(bytes(32)).decode()


@pytest.mark.parametrize(
    "body",
    [
        f"o\n3\n{ROOT64}",
        f"o\n03\n{ROOT64}\n",
        f"o\n+3\n{ROOT64}\n",
        f"o\n3 \n{ROOT64}\n",
        f"o\n\u0663\n{ROOT64}\n",
        f"o\n18446744073709551616\n{ROOT64}\n",
        f"o\n3\n{ROOT64[:-1]}\n",
        f"o\n3\n{base64.b64encode(bytes(31)).decode()}\n",
        f"o\n3\n{ROOT64}\n\n",
        f"\n3\n{ROOT64}\n",
        "o\n3\n",
        f"o\n3\n{ROOT64.replace('A=', 'B=')}\n",
    ],
)
def test_malformed_checkpoints_are_refused(body: str) -> None:
    with pytest.raises(NoteError, match="checkpoint"):
        notes.parse_checkpoint(body)


def test_a_checkpoint_must_be_signed_by_its_origin() -> None:
    log, other = notes.generate_signer("log.example"), notes.generate_signer("other.example")
    body = Checkpoint("log.example", 5, bytes(32)).body()
    assert notes.open_checkpoint(notes.sign_note(body, [log]), [log.verifier()]).size == 5
    with pytest.raises(NoteError, match="not the name of a key that signed it"):
        notes.open_checkpoint(notes.sign_note(body, [other]), [other.verifier()])


def test_tlog_proof_files_round_trip() -> None:
    signer = notes.generate_signer("log.example")
    hashes = [bytes([i]) * 32 for i in range(8)]
    root = merkle.root_from_leaves(hashes)
    signed = notes.sign_note(Checkpoint("log.example", 8, root).body(), [signer])
    proof = merkle.inclusion_proof_from_leaves(5, hashes)
    text = notes.format_tlog_proof(5, proof, signed)
    lines = text.split("\n")
    assert lines[:2] == ["c2sp.org/tlog-proof@v1", "index 5"]
    assert lines[2:5] == [base64.b64encode(h).decode() for h in proof] and lines[5] == ""
    assert text.endswith("\n\n" + signed)
    parsed = notes.parse_tlog_proof(text)
    assert parsed == notes.TlogProof(5, tuple(proof), signed, None)
    with_extra = notes.parse_tlog_proof(notes.format_tlog_proof(0, [], signed, extra=b"ctx"))
    assert with_extra == notes.TlogProof(0, (), signed, b"ctx")


@pytest.mark.parametrize(
    "text",
    [
        "c2sp.org/tlog-proof@v2\nindex 1\n\nx",
        "c2sp.org/tlog-proof@v1\nindex 01\n\nx",
        "c2sp.org/tlog-proof@v1\nindex -1\n\nx",
        "c2sp.org/tlog-proof@v1\n\nx",
        "c2sp.org/tlog-proof@v1\nindex 1\nnot-base64!\n\nx",
        f"c2sp.org/tlog-proof@v1\nindex 1\n{base64.b64encode(bytes(31)).decode()}\n\nx",
        "c2sp.org/tlog-proof@v1\nindex 1\n",
        "c2sp.org/tlog-proof@v1\nextra !!\nindex 1\n\nx",
    ],
)
def test_malformed_tlog_proofs_are_refused(text: str) -> None:
    with pytest.raises(NoteError, match="tlog-proof"):
        notes.parse_tlog_proof(text)
