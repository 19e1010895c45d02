"""Signed checkpoints of the verifiable log (docs/architecture.md, "The Merkle tree in storage").

The integrator (`Checkpointer.tick`, every AUDITLOG_CHECKPOINT_INTERVAL while the log grows): under
a PostgreSQL advisory lock (one process at a time, whatever the number of workers), in one
transaction it writes the tree's new full tiles, computes the root, proves it consistent with the
previous checkpoint (the database's and the last one anchored), signs the C2SP checkpoint, anchors
it outside the database and records it. A root that is not consistent is never signed.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from psycopg_pool import ConnectionPool

from auditlog import metrics
from auditlog.anchors import ANCHOR_FILE, AnchorError, Anchors, FileAnchors, S3Anchors
from auditlog.config import Config
from auditlog.domain.anchored import SignedCheckpoint
from auditlog.domain.merkle import ProofError, verify_consistency
from auditlog.domain.notes import (
    Checkpoint,
    NoteError,
    Signer,
    Verifier,
    generate_signer,
    open_checkpoint,
    sign_note,
)
from auditlog.errors import ConfigError, UnavailableError
from auditlog.export.s3_storage import s3_client_for
from auditlog.storage.postgres.tree import TileCache, TreeReader, TreeStorageError, extend_tiles

_log = logging.getLogger(__name__)
SIGNER_FILE = "checkpoint-signer.key"
# pg_try_advisory_xact_lock key of the integrator: "ckpt".
_LOCK_KEY = 0x636B7074
_LATEST = "SELECT tree_size, root, note FROM checkpoints ORDER BY tree_size DESC LIMIT 1"
_INSERT = "INSERT INTO checkpoints (tree_size, root, note, signed_at) VALUES (%s, %s, %s, %s)"
_HEAD_SIZE = "SELECT sequence + 1 FROM log_head WHERE id = 1"


def default_origin(data_dir: Path) -> str:
    """<host name>/auditlog/<8 hex digits of SHA-256 of the data directory's absolute path>: one
    name a log, without revealing the path."""
    digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:8]
    host = socket.gethostname().split(".")[0] or "localhost"
    return f"{host}/auditlog/{digest}"


def load_signer(config: Config) -> Signer:
    """The checkpoint signer: AUDITLOG_SIGNING_KEY, else the key in the data directory (made at
    first start, mode 0600). Its name is the log's origin."""
    origin = config.log_origin
    if config.signing_key is not None:
        try:
            signer = Signer.from_key(config.signing_key)
        except NoteError as err:
            raise ConfigError(
                f"AUDITLOG_SIGNING_KEY: {err}, want PRIVATE+KEY+<name>+<hash>+<base64>"
            ) from None
        if origin is not None and signer.name != origin:
            raise ConfigError(
                f"AUDITLOG_LOG_ORIGIN: got {origin!r}, but AUDITLOG_SIGNING_KEY is the key of {signer.name!r}"
            )
        return signer
    path = config.data_dir / SIGNER_FILE
    if not path.exists():
        # Several worker processes may start together: written under another name and linked into
        # place, so every one of them reads the same key.
        generated = generate_signer(origin or default_origin(config.data_dir))
        config.data_dir.mkdir(parents=True, exist_ok=True)
        temporary = config.data_dir / f".{SIGNER_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(generated.signer_key() + "\n")
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)
                _log.info("generated the checkpoint signing key in the data directory (%s)", SIGNER_FILE)
        finally:
            temporary.unlink()
    try:
        signer = Signer.from_key(path.read_text().strip())
    except NoteError as err:
        raise ConfigError(f"AUDITLOG_DATA_DIR: {SIGNER_FILE} is not a signer key ({err})") from None
    if origin is not None and signer.name != origin:
        raise ConfigError(
            f"AUDITLOG_LOG_ORIGIN: got {origin!r}, but the log's key in the data directory is"
            f" for {signer.name!r}; a log keeps its origin"
        )
    return signer


def create_anchors(config: Config) -> Anchors:
    """S3 when a bucket is configured, else the append-only file in the data directory."""
    if config.s3_bucket_name:
        client = s3_client_for(config)
        return S3Anchors(
            client, config.s3_bucket_name, retention=timedelta(days=config.anchor_retention_days)
        )
    config.data_dir.mkdir(parents=True, exist_ok=True)
    return FileAnchors(config.data_dir / ANCHOR_FILE)


class SigningRefusedError(RuntimeError):
    """The tree is not consistent with a checkpoint already signed: nothing is signed."""


def open_signed(note: str, verifier: Verifier, origin: str) -> SignedCheckpoint:
    """The checkpoint of a note this log's key signed; NoteError otherwise."""
    checkpoint = open_checkpoint(note, [verifier])
    if checkpoint.origin != origin:
        raise NoteError(f"origin: got {checkpoint.origin!r}, want {origin!r}")
    return SignedCheckpoint(checkpoint.size, checkpoint.root, note)


class AnchoredCheckpoints:
    """The anchored checkpoints this log's key signed, one a size; read once and then only the
    ones written since (anchors never change), so VerifyChain does not re-read every anchor."""

    def __init__(self, anchors: Anchors, verifier: Verifier, origin: str) -> None:
        self._anchors = anchors
        self._verifier = verifier
        self._origin = origin
        self._found: dict[int, SignedCheckpoint] = {}
        self._position: str | None = None
        self._lock = threading.Lock()

    def read(self) -> list[SignedCheckpoint]:
        with self._lock:
            for position, note in self._anchors.notes(self._position):
                self._position = position
                try:
                    checkpoint = open_signed(note, self._verifier, self._origin)
                except NoteError as err:
                    _log.warning("an anchored checkpoint is not signed by this log's key; ignored (%s)", err)
                    continue
                self._found.setdefault(checkpoint.tree_size, checkpoint)
            return [self._found[size] for size in sorted(self._found)]


def consistency_problem(reader: TreeReader, old: SignedCheckpoint, size: int, root: bytes) -> str | None:
    """Why the stored tree of size leaves (with root) does not extend old; None when it does."""
    if old.tree_size > size:
        return f"the tree has {size} leaves, fewer than the {old.tree_size} of a signed checkpoint"
    if old.tree_size == 0:
        return None
    try:
        proof = reader.consistency_proof(old.tree_size, size)
        verify_consistency(old.tree_size, size, proof, old.root, root)
    except (ProofError, TreeStorageError) as err:
        return f"the tree is not consistent with the signed checkpoint of size {old.tree_size}: {err}"
    return None


class Checkpointer:
    """Extends the stored tree and signs checkpoints; see the module docstring."""

    def __init__(
        self,
        pool: ConnectionPool,
        signer: Signer,
        anchors: Anchors,
        *,
        interval: float,
        clock: Callable[[], datetime],
        cache: TileCache | None = None,
    ) -> None:
        self._pool = pool
        self._signer = signer
        self.verifier = Verifier.from_key(signer.verifier_key())
        self.origin = signer.name
        self.anchors = anchors
        self._anchored_checkpoints = AnchoredCheckpoints(anchors, self.verifier, self.origin)
        self._interval = interval
        self._clock = clock
        self.cache = cache or TileCache()
        # The newest checkpoint anchored (read at start, then each one this process anchors).
        self._anchored: SignedCheckpoint | None = None
        # Why signing is refused, or None.
        self.refused: str | None = None
        # Ticks of this process one at a time (the timer's and a caller's), so the advisory lock
        # only ever decides between processes.
        self._tick_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="checkpointer", daemon=True)

    def start(self) -> None:
        """Checks the tree against the anchored checkpoints (loudly on a mismatch), then signs
        every interval."""
        try:
            anchored = self._anchored_checkpoints.read()
        except AnchorError as err:
            _log.error("cannot read the anchored checkpoints: %s", err)
            anchored = []
        self._anchored = anchored[-1] if anchored else None
        self._safe_tick(check=True)
        self._thread.start()

    def anchored(self) -> list[SignedCheckpoint]:
        """The anchored checkpoints this log's key signed, by tree size."""
        try:
            return self._anchored_checkpoints.read()
        except AnchorError as err:
            raise UnavailableError(f"the anchored checkpoints cannot be read: {err}") from None

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._safe_tick()

    def _safe_tick(self, *, check: bool = False) -> None:
        try:
            self.tick(check=check)
        except SigningRefusedError as err:
            if self.refused != str(err):
                _log.error("REFUSING TO SIGN checkpoints: %s", err)
            self.refused = str(err)
        except Exception as err:  # noqa: BLE001 - the next interval tries again
            _log.warning("checkpoint not signed this time: %s", err)

    def tick(self, *, check: bool = False) -> SignedCheckpoint | None:
        """Signs a checkpoint of the current head when the log grew since the last one; returns it
        (None: nothing new, or another process holds the lock). check: prove the tree consistent
        with the last checkpoints even when the log did not grow."""
        with self._tick_lock, self._pool.connection() as conn, conn.transaction():
            if not _one(conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (_LOCK_KEY,)).fetchone()):
                return None
            size = int(_one(conn.execute(_HEAD_SIZE).fetchone()))
            latest_row = conn.execute(_LATEST).fetchone()
            latest = self._stored(latest_row) if latest_row is not None else None
            anchored = self._anchored
            if not check and self.refused is None and latest is not None and latest.tree_size == size:
                return None
            try:
                extend_tiles(conn, size)
            except TreeStorageError as err:
                raise SigningRefusedError(str(err)) from None
            # No cache: the checks read what the database holds now.
            reader = TreeReader(conn)
            root = reader.root(size)
            for old in (latest, anchored):
                if old is not None:
                    problem = consistency_problem(reader, old, size, root)
                    if problem is not None:
                        raise SigningRefusedError(problem)
            self.refused = None
            if latest is not None and latest.tree_size == size:
                return None
            note = sign_note(Checkpoint(self.origin, size, root).body(), [self._signer])
            # Anchored first: every checkpoint the database records is anchored.
            self.anchors.put(size, note)
            signed_at = self._clock()
            conn.execute(_INSERT, (size, root, note, signed_at))
        metrics.checkpoint_signed(size, signed_at.timestamp())
        signed = SignedCheckpoint(size, root, note)
        self._anchored = signed
        return signed

    def _stored(self, row: Any) -> SignedCheckpoint:
        """The checkpoint of a checkpoints row, refusing one this log's key did not sign."""
        try:
            checkpoint = open_signed(str(row[2]), self.verifier, self.origin)
        except NoteError as err:
            raise SigningRefusedError(
                f"the latest checkpoint in the database (size {row[0]}) is not signed by this log's key: {err}"
            ) from None
        if checkpoint.tree_size != row[0] or checkpoint.root != bytes(row[1]):
            raise SigningRefusedError(f"the checkpoint row of size {row[0]} does not match its signed note")
        return checkpoint


def _one(row: Any) -> Any:
    if row is None:
        raise TreeStorageError("a row the schema guarantees is missing")
    return row[0]
