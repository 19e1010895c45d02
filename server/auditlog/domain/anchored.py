"""Matching the log's leaves with checkpoints anchored outside the database (pure: the verifier
feeds it the leaf hashes it reads anyway, in sequence order, one hash a tree level kept)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from auditlog.domain.merkle import fold, hash_children


@dataclass(frozen=True)
class SignedCheckpoint:
    tree_size: int
    root: bytes
    note: str


class StreamingRoot:
    """The roots of the prefixes of a stream of leaf hashes, one hash a level kept (for the
    verifier, which reads every leaf once)."""

    def __init__(self) -> None:
        self.size = 0
        # Perfect subtree roots, largest first: (height, hash).
        self._stack: list[tuple[int, bytes]] = []

    def push(self, leaf: bytes) -> None:
        height, node = 0, leaf
        while self._stack and self._stack[-1][0] == height:
            node = hash_children(self._stack.pop()[1], node)
            height += 1
        self._stack.append((height, node))
        self.size += 1

    def root(self) -> bytes:
        return hashlib.sha256(b"").digest() if not self._stack else fold([h for _, h in self._stack])


class AnchorCheck:
    """Compares the leaf hashes of the log, fed in sequence order from 0, with the anchored
    checkpoints: `mismatch` is the first one the leaves do not lead to."""

    def __init__(self, anchored: Iterable[SignedCheckpoint]) -> None:
        self._pending = iter(sorted((c for c in anchored if c.tree_size > 0), key=lambda c: c.tree_size))
        self._wanted = next(self._pending, None)
        self._tree = StreamingRoot()
        self.mismatch: SignedCheckpoint | None = None

    def feed(self, leaf: bytes) -> None:
        if self._wanted is None or self.mismatch is not None:
            return
        self._tree.push(leaf)
        while self._wanted is not None and self._tree.size == self._wanted.tree_size:
            if self._tree.root() != self._wanted.root:
                self.mismatch = self._wanted
                return
            self._wanted = next(self._pending, None)

    def finish(self) -> SignedCheckpoint | None:
        """After the last leaf: the first checkpoint not matched (a larger one means leaves are gone)."""
        return self.mismatch or self._wanted

    @property
    def leaves(self) -> int:
        return self._tree.size
