"""The last checkpoint a client verified, kept in a file, so that a server that rolls back or forks
its log is caught by its own clients (as immudb's clients keep their state)."""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from auditlog_client.verify import (
    SignedCheckpoint,
    VerificationError,
    check_consistency,
    open_checkpoint,
    parse_verifier_key,
)


class LogInconsistentError(VerificationError):
    """A checkpoint the log's key signed that does not extend the stored one: a rollback or a fork."""


class CheckpointState:
    """The last verified checkpoint of one log (the signed note, verbatim) in the file at path.

    advance() accepts a newer checkpoint only if the log's key signed it and a consistency proof
    shows it extends the stored one; the first checkpoint is trusted as given. The file is replaced
    atomically and advances are serialised by a lock file beside it.
    """

    def __init__(self, path: str | os.PathLike[str], key: str) -> None:
        self.path = Path(path)
        self._key = parse_verifier_key(key)

    @property
    def current(self) -> SignedCheckpoint | None:
        """The stored checkpoint (its signature checked again), or None before the first."""
        try:
            note = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            return open_checkpoint(note, self._key)
        except VerificationError as err:
            raise VerificationError(
                f"the stored checkpoint in {self.path.name} is not valid: {err}"
            ) from None

    def advance(self, new_note: str, consistency_proof: Sequence[bytes]) -> SignedCheckpoint:
        """Verify new_note against the stored checkpoint and store it; VerificationError (and the
        file unchanged) on a bad signature, a smaller size (rollback) or a failed proof (fork)."""
        new = open_checkpoint(new_note, self._key)
        with self._locked():
            old = self.current
            return self._advance(old, new, lambda _first, _second: consistency_proof)

    def update(self, new_note: str, prove: Callable[[int, int], Sequence[bytes]]) -> SignedCheckpoint:
        """As advance(), with prove(stored size, new size) asked for the consistency proof under the
        lock (only when the stored size is between 1 and the new size)."""
        new = open_checkpoint(new_note, self._key)
        with self._locked():
            return self._advance(self.current, new, prove)

    def _advance(
        self,
        old: SignedCheckpoint | None,
        new: SignedCheckpoint,
        prove: Callable[[int, int], Sequence[bytes]],
    ) -> SignedCheckpoint:
        if old is not None:
            if new.size < old.size:
                raise LogInconsistentError(
                    f"the log went back from size {old.size} to {new.size}: a rollback"
                )
            proof = prove(old.size, new.size) if 0 < old.size < new.size else []
            try:
                check_consistency(old.size, old.root, new.size, new.root, proof)
            except VerificationError as err:
                raise LogInconsistentError(str(err)) from None
            if new.size == old.size:
                return old
        self._replace(new.note)
        return new

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.with_name(self.path.name + ".lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _replace(self, note: str) -> None:
        fd, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
                out.write(note)
                out.flush()
                os.fsync(out.fileno())
            Path(temporary).replace(self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
