"""The log's Merkle tree: RFC 9162 section 2.1 hashes and proofs, and C2SP tlog-tiles coordinates.

Pure functions over leaf hashes (SHA-256(0x00 || canonical bytes), docs/integrity.md). Storage
computes every proof hash as fold(read(perfect_subtrees(start, end))) over the ranges that
inclusion_ranges / consistency_ranges name, so it never needs more than the perfect subtrees.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

HASH_SIZE = 32
EMPTY_ROOT: bytes = hashlib.sha256(b"").digest()
NODE_PREFIX = b"\x01"
TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
MAX_TILE_LEVEL = 63
# Sizes and indexes are unsigned 64-bit in every tlog implementation.
MAX_SIZE = (1 << 64) - 1


class ProofError(ValueError):
    """A proof that does not prove what it claims, or cannot be checked as given."""


def hash_children(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right): an interior node."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1): where MTH splits n leaves."""
    return 1 << ((n - 1).bit_length() - 1)


def _check_count(name: str, value: int, low: int = 0) -> None:
    if type(value) is not int or not low <= value <= MAX_SIZE:
        raise ValueError(f"{name}: got {value!r}, want an integer from {low} to 2^64-1")


def root_from_leaves(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH(D[0:n]) by the RFC's recursive definition (the reference the other functions match)."""

    def mth(lo: int, hi: int) -> bytes:
        if hi - lo == 1:
            return leaf_hashes[lo]
        k = _split(hi - lo)
        return hash_children(mth(lo, lo + k), mth(lo + k, hi))

    if not leaf_hashes:
        return EMPTY_ROOT
    return mth(0, len(leaf_hashes))


def perfect_subtrees(start: int, end: int) -> list[tuple[int, int]]:
    """The maximal perfect subtrees (level, index) covering leaves [start, end), left to right.

    Subtree (level, index) covers leaves [index * 2^level, (index + 1) * 2^level). When [start, end)
    is a node of the log's tree (start is 0, or a multiple of a power of two at least end - start,
    as every range of inclusion_ranges and consistency_ranges is), fold() of their hashes is the
    range's MTH.
    """
    _check_count("start", start)
    _check_count("end", end)
    if start >= end:
        raise ValueError(f"leaf range: got [{start}, {end}), want start < end")
    subtrees = []
    while start < end:
        # The largest aligned block at start that still fits before end.
        level = (start & -start).bit_length() - 1 if start else 64
        level = min(level, (end - start).bit_length() - 1)
        subtrees.append((level, start >> level))
        start += 1 << level
    return subtrees


def fold(hashes: Sequence[bytes]) -> bytes:
    """The hashes of perfect_subtrees(start, end), combined right to left: MTH(D[start:end])."""
    if not hashes:
        raise ValueError("fold: got no hashes, want at least one")
    root = hashes[-1]
    for left in reversed(hashes[:-1]):
        root = hash_children(left, root)
    return root


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges [start, end) whose MTHs are the inclusion proof of leaf index in a tree of
    size leaves, in proof order (leaf's sibling first): RFC 9162 section 2.1.3.1's PATH."""
    _check_count("size", size, 1)
    _check_count("index", index)
    if index >= size:
        raise ValueError(f"index: got {index}, want below the tree size {size}")
    ranges = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo += k
    ranges.reverse()
    return ranges


def consistency_ranges(size1: int, size2: int) -> list[tuple[int, int]]:
    """The leaf ranges [start, end) whose MTHs are the consistency proof from size1 to size2, in
    proof order: RFC 9162 section 2.1.4.1's PROOF (empty when the sizes are equal)."""
    _check_count("size1", size1, 1)
    _check_count("size2", size2, 1)
    if size1 > size2:
        raise ValueError(f"size1: got {size1}, want at most size2 ({size2})")
    outer = []
    lo, hi, whole = 0, size2, True
    while size1 != hi:
        k = _split(hi - lo)
        if size1 - lo <= k:
            outer.append((lo + k, hi))
            hi = lo + k
        else:
            outer.append((lo, lo + k))
            lo += k
            whole = False
    # SUBPROOF(m, D[lo:m], b): nothing when the old tree is this whole node, else its MTH.
    base = [] if whole else [(lo, hi)]
    return base + outer[::-1]


def _range_hash(leaf_hashes: Sequence[bytes], start: int, end: int) -> bytes:
    return root_from_leaves(leaf_hashes[start:end])


def inclusion_proof_from_leaves(index: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """The inclusion proof of leaf index in the tree of these leaves (a reference, O(n))."""
    return [_range_hash(leaf_hashes, s, e) for s, e in inclusion_ranges(index, len(leaf_hashes))]


def consistency_proof_from_leaves(size1: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """The consistency proof from the tree of the first size1 leaves to the tree of all of them."""
    return [_range_hash(leaf_hashes, s, e) for s, e in consistency_ranges(size1, len(leaf_hashes))]


def _check_hash(name: str, value: bytes) -> None:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        raise ProofError(f"{name}: got {_describe(value)}, want a 32-byte hash")


def _check_hashes(name: str, hashes: Sequence[bytes]) -> None:
    for position, value in enumerate(hashes):
        _check_hash(f"{name}[{position}]", value)


def _describe(value: object) -> str:
    return f"{len(value)} bytes" if isinstance(value, bytes) else type(value).__name__


def _check_proof_sizes(**values: int) -> None:
    for key, value in values.items():
        if type(value) is not int or not 0 <= value <= MAX_SIZE:
            raise ProofError(f"{key}: got {value!r}, want an integer from 0 to 2^64-1")


def verify_inclusion(index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes) -> None:
    """Check that leaf_hash is leaf index of the tree of size leaves whose root is root
    (RFC 9162 section 2.1.3.2); raises ProofError naming what failed."""
    _check_proof_sizes(index=index, size=size)
    if index >= size:
        raise ProofError(f"index: got {index}, want below the tree size {size}")
    _check_hash("leaf hash", leaf_hash)
    _check_hash("root", root)
    _check_hashes("proof", proof)
    want = len(inclusion_ranges(index, size))
    if len(proof) != want:
        raise ProofError(f"proof: got {len(proof)} hashes, want {want} for index {index} in size {size}")
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if fn & 1 or fn == sn:
            r = hash_children(p, r)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = hash_children(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0 or r != root:
        raise ProofError(f"inclusion proof of index {index} does not lead to the root of size {size}")


def verify_consistency(size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes) -> None:
    """Check that the tree of size1 leaves with root1 is a prefix of the tree of size2 leaves with
    root2 (RFC 9162 section 2.1.4.2); raises ProofError naming what failed."""
    _check_proof_sizes(size1=size1, size2=size2)
    if size1 > size2:
        raise ProofError(f"size1: got {size1}, want at most size2 ({size2})")
    if size1 == 0:
        raise ProofError("size1: got 0, want at least 1 (every tree extends the empty one)")
    _check_hash("root1", root1)
    _check_hash("root2", root2)
    _check_hashes("proof", proof)
    want = len(consistency_ranges(size1, size2))
    if len(proof) != want:
        raise ProofError(f"proof: got {len(proof)} hashes, want {want} from size {size1} to {size2}")
    if size1 == size2:
        if root1 != root2:
            raise ProofError(f"two different roots for the same size {size1}")
        return
    path = list(proof)
    if size1 & (size1 - 1) == 0:
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError(f"consistency proof from size {size1} to {size2} is too long")
        if fn & 1 or fn == sn:
            fr = hash_children(c, fr)
            sr = hash_children(c, sr)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = hash_children(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if fr != root1:
        raise ProofError(f"consistency proof does not lead to the root of size {size1}")
    if sr != root2 or sn != 0:
        raise ProofError(f"consistency proof does not lead to the root of size {size2}")


# C2SP tlog-tiles: tile/<L>/<N>[.p/<W>], N in 3-digit groups, all but the last prefixed by x.

_TILE_PATH = re.compile(r"tile/(0|[1-9][0-9]?)/((?:x[0-9]{3}/)*[0-9]{3})(?:\.p/([1-9][0-9]{0,2}))?")


def tile_path(level: int, index: int, width: int = TILE_WIDTH) -> str:
    """The tlog-tiles path of tile index at level, of width hashes (a partial tile below 256)."""
    if type(level) is not int or not 0 <= level <= MAX_TILE_LEVEL:
        raise ValueError(f"level: got {level!r}, want 0 to {MAX_TILE_LEVEL}")
    _check_count("index", index)
    if type(width) is not int or not 1 <= width <= TILE_WIDTH:
        raise ValueError(f"width: got {width!r}, want 1 to {TILE_WIDTH}")
    groups = [f"{index % 1000:03d}"]
    index //= 1000
    while index:
        groups.append(f"x{index % 1000:03d}")
        index //= 1000
    suffix = "" if width == TILE_WIDTH else f".p/{width}"
    return f"tile/{level}/{'/'.join(reversed(groups))}{suffix}"


def parse_tile_path(path: str) -> tuple[int, int, int]:
    """(level, index, width) of a tlog-tiles path; ValueError for any path the spec does not
    allow, including non-canonical spellings of a valid tile (leading x000 groups, .p/256)."""
    match = _TILE_PATH.fullmatch(path) if isinstance(path, str) and len(path) <= 64 else None
    if match is None:
        raise ValueError("tile path: got a malformed path, want tile/<L>/<N>[.p/<W>]")
    level = int(match[1])
    index = int(match[2].replace("x", "").replace("/", ""))
    width = int(match[3]) if match[3] else TILE_WIDTH
    if level > MAX_TILE_LEVEL or width > TILE_WIDTH or index > MAX_SIZE:
        raise ValueError("tile path: got a level, width or index out of range")
    if tile_path(level, index, width) != path:
        raise ValueError("tile path: got a non-canonical spelling of a tile")
    return level, index, width


def partial_tiles(size: int) -> list[tuple[int, int, int]]:
    """The partial tiles (level, index, width) of the tree of size leaves, lowest level first:
    at level L, floor(size / 256^L) mod 256 hashes after the full tiles."""
    _check_count("size", size)
    tiles = []
    level = 0
    while size >> (TILE_HEIGHT * level):
        width = (size >> (TILE_HEIGHT * level)) % TILE_WIDTH
        if width:
            tiles.append((level, size >> (TILE_HEIGHT * (level + 1)), width))
        level += 1
    return tiles


def tiles_for_size(size: int) -> list[tuple[int, int, int]]:
    """The rightmost tile (level, index, width) of each level of the tree of size leaves: the
    partial one, or the last full one where the level has no partial tile."""
    _check_count("size", size)
    tiles = []
    level = 0
    while size >> (TILE_HEIGHT * level):
        hashes = size >> (TILE_HEIGHT * level)
        width = hashes % TILE_WIDTH or TILE_WIDTH
        tiles.append((level, (hashes - width) // TILE_WIDTH, width))
        level += 1
    return tiles


def subtree_tile(level: int, index: int) -> tuple[int, int, int, int]:
    """Where perfect subtree (level, index) lives in the tiles: (tile level, tile index, offset,
    count); its hash is root_from_leaves of the count hashes from offset in that tile."""
    if type(level) is not int or not 0 <= level < 64:
        raise ValueError(f"level: got {level!r}, want 0 to 63")
    _check_count("index", index)
    tile_level, rest = divmod(level, TILE_HEIGHT)
    first = index << rest
    tile_index, offset = divmod(first, TILE_WIDTH)
    return tile_level, tile_index, offset, 1 << rest
