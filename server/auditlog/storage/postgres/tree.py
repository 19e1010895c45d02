"""The RFC 9162 Merkle tree in storage, as C2SP tlog-tiles hash tiles (docs/architecture.md, "The
Merkle tree in storage").

Tile level L holds the tree's nodes of height 8L: level 0 the leaf hashes, level 1 the roots of 256
leaves, and so on. A full tile is a write-once row of merkle_tiles (with its own root, which is an
entry of the tile a level up); the partial tile at the right edge is derived from at most 255 rows:
leaf hashes of audit_events at level 0, roots of full tiles of level L - 1 above. Any node of the tree
is therefore one read of one tile, and any proof a bounded number of reads (two a tile level).
"""

from __future__ import annotations

import hashlib
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from threading import Lock
from typing import Any, NamedTuple

import psycopg
from psycopg_pool import ConnectionPool

from auditlog.domain.merkle import (
    TILE_HEIGHT,
    TILE_WIDTH,
    consistency_ranges,
    fold,
    hash_children,
    inclusion_ranges,
    perfect_subtrees,
)

EMPTY_ROOT = hashlib.sha256(b"").digest()
_FULL_TILE = "SELECT hashes FROM merkle_tiles WHERE level = %s AND index = %s"
_LEAVES = (
    "SELECT sequence, leaf_hash FROM audit_events WHERE sequence >= %s AND sequence < %s ORDER BY sequence"
)
_ROOTS = "SELECT index, root FROM merkle_tiles WHERE level = %s AND index >= %s AND index < %s ORDER BY index"
_FULL_TILES = "SELECT coalesce(max(index) + 1, 0) FROM merkle_tiles WHERE level = %s"
_INSERT_TILE = "INSERT INTO merkle_tiles (level, index, hashes, root) VALUES (%s, %s, %s, %s)"
# Full tiles derived and inserted per query while the integrator catches up.
_TILES_PER_READ = 64


class TreeStorageError(RuntimeError):
    """The stored tree or the leaves under it are not whole (rows missing below the head)."""


def subtree_root(hashes: Sequence[bytes]) -> bytes:
    """The root of a perfect subtree (a power-of-two count) over node hashes of one height."""
    level = list(hashes)
    while len(level) > 1:
        level = [hash_children(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


# A tile's hashes and the levels of subtree roots above them: levels[k][i] is the root of hashes
# [i << k, (i + 1) << k) of the tile (complete subtrees only).
TileLevels = list[list[bytes]]


def tile_levels(hashes: list[bytes]) -> TileLevels:
    levels = [hashes]
    while len(levels[-1]) > 1:
        below = levels[-1]
        levels.append([hash_children(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)])
    return levels


class TileCache:
    """Tiles with their subtree levels, by (level, index, width): a full tile never changes once
    written, nor does a partial one of a given width (its hashes are committed, write-once rows)."""

    def __init__(self, capacity: int = 256) -> None:
        self._tiles: OrderedDict[tuple[int, int, int], TileLevels] = OrderedDict()
        self._capacity = capacity
        self._lock = Lock()

    def get(self, key: tuple[int, int, int]) -> TileLevels | None:
        with self._lock:
            tile = self._tiles.get(key)
            if tile is not None:
                self._tiles.move_to_end(key)
            return tile

    def put(self, key: tuple[int, int, int], tile: TileLevels) -> None:
        with self._lock:
            self._tiles[key] = tile
            self._tiles.move_to_end(key)
            while len(self._tiles) > self._capacity:
                self._tiles.popitem(last=False)


def _split(blob: bytes) -> list[bytes]:
    return [blob[i : i + 32] for i in range(0, len(blob), 32)]


class TreeReader:
    """Node hashes, roots and proofs of the stored tree, read on one connection (one request or one
    integrator transaction). Sizes must be at most what the integrator has stored tiles for.
    Without a cache every tile is read from the database (the integrator's checks)."""

    def __init__(self, conn: psycopg.Connection[Any], cache: TileCache | None = None) -> None:
        self._conn = conn
        self._cache = cache if cache is not None else TileCache()
        # The tree size nodes are read for: it decides the width of each level's partial tile.
        self._size = 0

    def tile(self, level: int, index: int, width: int) -> list[bytes]:
        """The first width hashes of tile (level, index)."""
        return self.levels(level, index, width)[0]

    def levels(self, level: int, index: int, width: int) -> TileLevels:
        key = (level, index, width)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        full = self._cache.get((level, index, TILE_WIDTH))
        if full is not None:
            # A partial tile is a prefix of the full one.
            found = [hashes[: width >> k] for k, hashes in enumerate(full) if width >> k]
        else:
            row = self._conn.execute(_FULL_TILE, (level, index)).fetchone()
            if row is not None:
                full = tile_levels(_split(bytes(row[0])))
                self._cache.put((level, index, TILE_WIDTH), full)
                found = [hashes[: width >> k] for k, hashes in enumerate(full) if width >> k]
            else:
                found = tile_levels(self.derive(level, index, width))
        self._cache.put(key, found)
        return found

    def derive(self, level: int, index: int, width: int) -> list[bytes]:
        """Tile (level, index) up to width from the rows below it: leaf hashes, or the roots of
        full tiles a level down."""
        first = index * TILE_WIDTH
        if level == 0:
            rows = self._conn.execute(_LEAVES, (first, first + width)).fetchall()
        else:
            rows = self._conn.execute(_ROOTS, (level - 1, first, first + width)).fetchall()
        if len(rows) != width or (rows and rows[-1][0] != first + width - 1):
            what = "events" if level == 0 else f"level {level - 1} tiles"
            raise TreeStorageError(
                f"tile {level}/{index}: {what} {first} to {first + width - 1} are not all stored"
            )
        return [bytes(row[1]) for row in rows]

    def node(self, height: int, index: int) -> bytes:
        """The hash of the perfect subtree of 2**height leaves starting at leaf index << height."""
        level, within = divmod(height, TILE_HEIGHT)
        first = index << within
        tile_index, offset = divmod(first, TILE_WIDTH)
        width = min(TILE_WIDTH, (self._size >> (TILE_HEIGHT * level)) - tile_index * TILE_WIDTH)
        if width < offset + (1 << within):
            raise TreeStorageError(f"node {height}/{index} lies beyond the tree of size {self._size}")
        return self.levels(level, tile_index, width)[within][offset >> within]

    def range_hash(self, start: int, end: int) -> bytes:
        """The Merkle hash of leaves [start, end) (a subtree of the RFC 9162 shape), end at most
        the size given to root or the proofs."""
        return fold([self.node(height, index) for height, index in perfect_subtrees(start, end)])

    def root(self, size: int) -> bytes:
        self._size = size
        return EMPTY_ROOT if size == 0 else self.range_hash(0, size)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        self._size = size
        return [self.range_hash(start, end) for start, end in inclusion_ranges(index, size)]

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        self._size = second
        return [self.range_hash(start, end) for start, end in consistency_ranges(first, second)]


def extend_tiles(conn: psycopg.Connection[Any], size: int) -> int:
    """Writes every full tile of the tree of size leaves not yet stored, level by level, in conn's
    transaction; returns how many it wrote."""
    written = 0
    reader = TreeReader(conn)
    level = 0
    while True:
        want = size >> (TILE_HEIGHT * (level + 1))
        if want == 0:
            return written
        row = conn.execute(_FULL_TILES, (level,)).fetchone()
        have = int(row[0]) if row is not None else 0
        while have < want:
            count = min(_TILES_PER_READ, want - have)
            # One read for count tiles: a level-0 run of leaves, or a run of tile roots a level down.
            hashes = reader.derive(level, have, count * TILE_WIDTH) if count > 0 else []
            rows = []
            for n in range(count):
                tile = hashes[n * TILE_WIDTH : (n + 1) * TILE_WIDTH]
                rows.append((level, have + n, b"".join(tile), subtree_root(tile)))
            with conn.cursor() as cursor:
                cursor.executemany(_INSERT_TILE, rows)
            written += count
            have += count
        level += 1


_LATEST_CHECKPOINT = "SELECT tree_size, root, note FROM checkpoints ORDER BY tree_size DESC LIMIT 1"
_CHECKPOINT_AT = "SELECT tree_size, root, note FROM checkpoints WHERE tree_size = %s"
_LEAF_BY_ID = "SELECT id, sequence, leaf_hash FROM audit_events WHERE id = %s"
_LEAF_BY_SEQUENCE = "SELECT id, sequence, leaf_hash FROM audit_events WHERE sequence = %s"


class StoredCheckpoint(NamedTuple):
    tree_size: int
    root: bytes
    note: str


class Leaf(NamedTuple):
    id: str
    sequence: int
    leaf_hash: bytes


def _checkpoint(row: Any) -> StoredCheckpoint | None:
    return None if row is None else StoredCheckpoint(int(row[0]), bytes(row[1]), str(row[2]))


class TreeStore:
    """The proof queries of the log service. Sizes are bounded by the latest signed checkpoint,
    whose tiles the integrator has written."""

    def __init__(self, pool: ConnectionPool, cache: TileCache) -> None:
        self._pool = pool
        self._cache = cache

    @contextmanager
    def session(self) -> Iterator[TreeSession]:
        """One pooled connection for all the reads of one request."""
        with self._pool.connection() as conn:
            yield TreeSession(conn, self._cache)


class TreeSession:
    def __init__(self, conn: psycopg.Connection[Any], cache: TileCache) -> None:
        self._conn = conn
        self._reader = TreeReader(conn, cache)

    def latest(self) -> StoredCheckpoint | None:
        return _checkpoint(self._conn.execute(_LATEST_CHECKPOINT).fetchone())

    def checkpoint(self, size: int) -> StoredCheckpoint | None:
        return _checkpoint(self._conn.execute(_CHECKPOINT_AT, (size,)).fetchone())

    def leaf(self, *, event_id: uuid.UUID | None = None, sequence: int | None = None) -> Leaf | None:
        if event_id is not None:
            row = self._conn.execute(_LEAF_BY_ID, (event_id,)).fetchone()
        else:
            row = self._conn.execute(_LEAF_BY_SEQUENCE, (sequence,)).fetchone()
        return None if row is None else Leaf(str(row[0]), int(row[1]), bytes(row[2]))

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        return self._reader.inclusion_proof(index, size)

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        return self._reader.consistency_proof(first, second)

    def tile(self, level: int, index: int, width: int) -> bytes:
        return b"".join(self._reader.tile(level, index, width))
