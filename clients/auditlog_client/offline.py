"""auditctl's offline commands: check checkpoints and proof files with only the verifier key."""

from __future__ import annotations

import argparse
import base64
import uuid
from pathlib import Path
from typing import Any

from auditlog_client.evidence import MANIFEST_SUFFIX, check_export_file, parse_manifest
from auditlog_client.verify import (
    VerificationError,
    VerifierKey,
    check_consistency,
    check_inclusion,
    event_leaf_hash,
    load_event,
    open_checkpoint,
    parse_hash_lines,
    parse_proof_file,
    parse_verifier_key,
)

# Exit status when a file was read but does not verify (as `auditctl verify` for a broken chain).
INVALID = 3


class OptionError(Exception):
    """An option that cannot be used (an unreadable file, a malformed key); the message names it."""


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    checkpoint = commands.add_parser(
        "verify-checkpoint", help="check a signed checkpoint (and its consistency with an earlier one)"
    )
    checkpoint.add_argument("file", help="the signed checkpoint (a C2SP signed note)")
    checkpoint.add_argument("--key", required=True, help="the log's verifier key <name>+<hex>+<base64>")
    checkpoint.add_argument("--previous", help="an earlier signed checkpoint of the same log")
    checkpoint.add_argument(
        "--proof", help="the consistency proof from --previous: base64 hashes, one a line"
    )
    proof = commands.add_parser("verify-proof", help="check a c2sp.org/tlog-proof@v1 file")
    proof.add_argument("file", help="the tlog-proof file")
    proof.add_argument("--key", required=True, help="the log's verifier key <name>+<hex>+<base64>")
    proof.add_argument(
        "--event", help="the event as JSON, as the API returns it: its leaf hash is recomputed"
    )
    export = commands.add_parser(
        "verify-export", help="check an export file against its signed manifest (and JSON proofs)"
    )
    export.add_argument("file", help="the export file as downloaded")
    export.add_argument("--key", required=True, help="the log's verifier key <name>+<hex>+<base64>")
    export.add_argument("--manifest", help="the signed manifest (default: FILE.manifest)")


def _read(path: str, option: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else "not UTF-8 text"
        raise OptionError(f"{option}: cannot read {path} ({reason})") from None


def _key(value: str) -> VerifierKey:
    try:
        return parse_verifier_key(value)
    except VerificationError as err:
        raise OptionError(f"--key: {err}") from None


def verify_checkpoint(args: argparse.Namespace) -> str:
    """The one line saying what was verified; VerificationError saying what was not."""
    if (args.previous is None) != (args.proof is None):
        raise OptionError("--previous and --proof go together")
    key = _key(args.key)
    checkpoint = open_checkpoint(_read(args.file, "FILE"), key)
    line = f"checkpoint valid: {checkpoint.origin} size {checkpoint.size} root {_b64(checkpoint.root)}"
    if args.previous is None:
        return line
    try:
        previous = open_checkpoint(_read(args.previous, "--previous"), key)
    except VerificationError as err:
        raise VerificationError(f"previous checkpoint: {err}") from None
    proof = parse_hash_lines(_read(args.proof, "--proof"))
    check_consistency(previous.size, previous.root, checkpoint.size, checkpoint.root, proof)
    return f"{line}, consistent with size {previous.size}"


def verify_proof(args: argparse.Namespace) -> str:
    key = _key(args.key)
    proof = parse_proof_file(_read(args.file, "FILE"))
    checkpoint = open_checkpoint(proof.checkpoint_note, key)
    claimed = proof.extra if proof.extra is not None and len(proof.extra) == 32 else None
    if args.event is not None:
        event = load_event(_read(args.event, "--event"))
        leaf = event_leaf_hash(event)
        stated = event.get("leaf_hash")
        if isinstance(stated, str) and stated.lower() != leaf.hex():
            raise VerificationError("the event's fields do not hash to its leaf_hash: the event was altered")
        if str(event.get("sequence", 0)) != str(proof.index):
            raise VerificationError(f"the event's sequence is not the proof's index {proof.index}")
        if claimed is not None and claimed != leaf:
            raise VerificationError("the event's leaf hash is not the one the proof file names")
        subject = f"event {_event_id(event)} is"
    elif claimed is not None:
        leaf = claimed
        subject = f"leaf {leaf.hex()} is"
    else:
        raise VerificationError("the proof file names no leaf hash: give the event with --event")
    check_inclusion(proof.index, checkpoint.size, leaf, proof.proof, checkpoint.root)
    return f"proof valid: {subject} entry {proof.index} of {checkpoint.origin} at size {checkpoint.size}"


def verify_export(args: argparse.Namespace) -> str:
    key = _key(args.key)
    manifest_path = args.manifest or args.file + MANIFEST_SUFFIX
    manifest = parse_manifest(_read(manifest_path, "--manifest"), key)
    try:
        with Path(args.file).open("rb") as handle:
            found = check_export_file(handle, manifest, key)
    except OSError as err:
        raise OptionError(f"FILE: cannot read {args.file} ({err.strerror or 'failed'})") from None
    name = Path(args.file).name
    if found.proven is None:
        return (
            f"export valid: {name} matches its manifest ({manifest.rows} rows,"
            f" checkpoint of {manifest.origin} at size {manifest.tree_size})"
        )
    return (
        f"export valid: {name} matches its manifest; {found.proven} events included in"
        f" {manifest.origin} at size {manifest.tree_size}"
    )


def _event_id(event: dict[str, Any]) -> str:
    try:
        return str(uuid.UUID(str(event.get("id"))))
    except ValueError:
        return "(no valid id)"


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


OFFLINE = {
    "verify-checkpoint": verify_checkpoint,
    "verify-proof": verify_proof,
    "verify-export": verify_export,
}
