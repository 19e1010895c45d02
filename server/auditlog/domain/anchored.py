"""Matching the log's leaves with checkpoints anchored outside the database (pure: the verifier
feeds it the leaf hashes it reads anyway, in sequence order, one hash a tree level kept)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from auditlog.domain.merkle import NODE_PREFIX, TILE_HEIGHT, TILE_WIDTH, fold, hash_children

_sha256 = hashlib.sha256
# Leaves held before they are hashed: many tiles a call, so the per-leaf work is the tiles' hashing.
_FEED_BATCH = 4 * TILE_WIDTH


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
        self.push_subtree(0, leaf)

    def push_subtree(self, height: int, node: bytes) -> None:
        """Appends the 2**height leaves whose root is node; self.size must be a multiple of them."""
        self.size += 1 << height
        while self._stack and self._stack[-1][0] == height:
            node = hash_children(self._stack.pop()[1], node)
            height += 1
        self._stack.append((height, node))

    def root(self) -> bytes:
        return hashlib.sha256(b"").digest() if not self._stack else fold([h for _, h in self._stack])


def _perfect_root(leaves: list[bytes]) -> bytes:
    """MTH of a power-of-two number of leaf hashes, a level at a time."""
    level = leaves
    while len(level) > 1:
        level = [
            _sha256(NODE_PREFIX + left + right).digest()
            for left, right in zip(level[::2], level[1::2], strict=True)
        ]
    return level[0]


class AnchorCheck:
    """Compares the leaf hashes of the log, fed in sequence order from 0, with the anchored
    checkpoints: `first_mismatch()` is the first one the leaves do not lead to. Leaves are taken
    a tile (256) at a time where no checkpoint falls inside it, one at a time where one does."""

    def __init__(self, anchored: Iterable[SignedCheckpoint]) -> None:
        self._pending = iter(sorted((c for c in anchored if c.tree_size > 0), key=lambda c: c.tree_size))
        self._wanted = next(self._pending, None)
        self._tree = StreamingRoot()
        self._mismatch: SignedCheckpoint | None = None
        self._buffer: list[bytes] = []

    def feed(self, leaf: bytes) -> None:
        self._buffer.append(leaf)
        if len(self._buffer) >= _FEED_BATCH:
            self._take()

    def _take(self) -> None:
        leaves, self._buffer = self._buffer, []
        tree = self._tree
        i, n = 0, len(leaves)
        while i < n and self._wanted is not None and self._mismatch is None:
            if (
                tree.size % TILE_WIDTH == 0
                and n - i >= TILE_WIDTH
                and tree.size + TILE_WIDTH <= self._wanted.tree_size
            ):
                tree.push_subtree(TILE_HEIGHT, _perfect_root(leaves[i : i + TILE_WIDTH]))
                i += TILE_WIDTH
            else:
                tree.push(leaves[i])
                i += 1
            while self._wanted is not None and tree.size == self._wanted.tree_size:
                if tree.root() != self._wanted.root:
                    self._mismatch = self._wanted
                    return
                self._wanted = next(self._pending, None)

    def first_mismatch(self) -> SignedCheckpoint | None:
        """The first checkpoint the leaves fed so far lead away from (None while all match)."""
        self._take()
        return self._mismatch

    def finish(self) -> SignedCheckpoint | None:
        """After the last leaf: the first checkpoint not matched (a larger one means leaves are gone)."""
        return self.first_mismatch() or self._wanted

    @property
    def leaves(self) -> int:
        self._take()
        return self._tree.size
