"""The Merkle tree against published RFC 6962 / RFC 9162 vectors and a naive recomputation."""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditlog.domain import merkle
from auditlog.domain.merkle import ProofError

# The 8-leaf reference tree of the RFC 6962 test data (certificate-transparency, and
# transparency-dev/merkle cmd/proofgen): its leaves, the root of every size 1..8, and proofs.
REFERENCE_LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
REFERENCE_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# (1-based leaf number, tree size, proof) as published.
REFERENCE_INCLUSION = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (3, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        2,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
REFERENCE_CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]
PROBES: dict[str, Any] = json.loads(
    (Path(__file__).parent / "data" / "transparency_dev_merkle_probes.json").read_text()
)


def leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def leaves(n: int) -> list[bytes]:
    return [leaf(i.to_bytes(4, "big")) for i in range(n)]


def naive_root(hashes: list[bytes]) -> bytes:
    """MTH written out once more, by repeated pairing with the odd node carried up (RFC 9162 2.1.1's
    tree drawn level by level), independent of the module's split-based recursion."""
    if not hashes:
        return hashlib.sha256(b"").digest()
    level = list(hashes)
    while len(level) > 1:
        pairs = [merkle.hash_children(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        level = pairs + ([level[-1]] if len(level) % 2 else [])
    return level[0]


def b64(values: list[str] | None) -> list[bytes]:
    return [base64.b64decode(v) for v in values or []]


def test_empty_root_is_sha256_of_nothing() -> None:
    assert merkle.EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert merkle.root_from_leaves([]) == merkle.EMPTY_ROOT


def test_reference_tree_roots_at_every_size() -> None:
    hashes = [leaf(d) for d in REFERENCE_LEAVES]
    assert [merkle.root_from_leaves(hashes[:n]).hex() for n in range(1, 9)] == REFERENCE_ROOTS


@pytest.mark.parametrize(("number", "size", "proof"), REFERENCE_INCLUSION)
def test_reference_inclusion_proofs(number: int, size: int, proof: list[str]) -> None:
    hashes = [leaf(d) for d in REFERENCE_LEAVES]
    made = merkle.inclusion_proof_from_leaves(number - 1, hashes[:size])
    assert [h.hex() for h in made] == proof
    root = bytes.fromhex(REFERENCE_ROOTS[size - 1])
    merkle.verify_inclusion(number - 1, size, hashes[number - 1], made, root)


@pytest.mark.parametrize(("size1", "size2", "proof"), REFERENCE_CONSISTENCY)
def test_reference_consistency_proofs(size1: int, size2: int, proof: list[str]) -> None:
    hashes = [leaf(d) for d in REFERENCE_LEAVES]
    made = merkle.consistency_proof_from_leaves(size1, hashes[:size2])
    assert [h.hex() for h in made] == proof
    roots = [bytes.fromhex(r) for r in REFERENCE_ROOTS]
    merkle.verify_consistency(size1, size2, made, roots[size1 - 1], roots[size2 - 1])


@pytest.mark.parametrize("probe", PROBES["inclusion"], ids=lambda p: p["file"])
def test_transparency_dev_inclusion_probes(probe: dict[str, Any]) -> None:
    def verify() -> None:
        merkle.verify_inclusion(
            probe["leafIdx"],
            probe["treeSize"],
            base64.b64decode(probe["leafHash"]),
            b64(probe["proof"]),
            base64.b64decode(probe["root"]),
        )

    if probe["wantErr"]:
        with pytest.raises(ProofError):
            verify()
    else:
        verify()


@pytest.mark.parametrize("probe", PROBES["consistency"], ids=lambda p: p["file"])
def test_transparency_dev_consistency_probes(probe: dict[str, Any]) -> None:
    # Stricter than the probes: a root that is not a 32-byte SHA-256 is refused even where the
    # probe calls the value "don't care".
    strict = any(len(base64.b64decode(probe[r])) != 32 for r in ("root1", "root2"))

    def verify() -> None:
        merkle.verify_consistency(
            probe["size1"],
            probe["size2"],
            b64(probe["proof"]),
            base64.b64decode(probe["root1"]),
            base64.b64decode(probe["root2"]),
        )

    if probe["wantErr"] or strict:
        with pytest.raises(ProofError):
            verify()
    else:
        verify()


HASHES_300 = leaves(300)


@functools.cache
def naive_range(start: int, end: int) -> bytes:
    return naive_root(HASHES_300[start:end])


def naive_subtree(subtree: tuple[int, int]) -> bytes:
    level, index = subtree
    return naive_range(index << level, (index + 1) << level)


def range_hash(start: int, end: int) -> bytes:
    """A proof range's hash the way storage computes it: perfect subtrees, folded."""
    return merkle.fold([naive_subtree(s) for s in merkle.perfect_subtrees(start, end)])


def test_roots_and_ranges_match_the_naive_tree_for_every_size_to_300() -> None:
    for size in range(1, 301):
        root = naive_range(0, size)
        assert merkle.root_from_leaves(HASHES_300[:size]) == root
        assert range_hash(0, size) == root


def test_inclusion_for_every_index_of_every_size_to_300() -> None:
    for size in range(1, 301):
        root = naive_range(0, size)
        for index in range(size):
            proof = [naive_range(s, e) for s, e in merkle.inclusion_ranges(index, size)]
            assert proof == [range_hash(s, e) for s, e in merkle.inclusion_ranges(index, size)]
            if size <= 40 or index % 37 == 0:
                assert merkle.inclusion_proof_from_leaves(index, HASHES_300[:size]) == proof
            merkle.verify_inclusion(index, size, HASHES_300[index], proof, root)


def test_consistency_for_every_pair_of_sizes_to_300() -> None:
    for size2 in range(1, 301):
        for size1 in range(1, size2 + 1):
            proof = [naive_range(s, e) for s, e in merkle.consistency_ranges(size1, size2)]
            assert proof == [range_hash(s, e) for s, e in merkle.consistency_ranges(size1, size2)]
            if size2 <= 40 or size1 % 37 == 0:
                assert merkle.consistency_proof_from_leaves(size1, HASHES_300[:size2]) == proof
            merkle.verify_consistency(size1, size2, proof, naive_range(0, size1), naive_range(0, size2))


@settings(max_examples=40, deadline=None)
@given(st.integers(301, 5000), st.data())
def test_large_trees_prove_and_refuse_tampering(size: int, data: st.DataObject) -> None:
    hashes = leaves(size)
    root = merkle.root_from_leaves(hashes)
    index = data.draw(st.integers(0, size - 1))
    proof = merkle.inclusion_proof_from_leaves(index, hashes)
    merkle.verify_inclusion(index, size, hashes[index], proof, root)
    size1 = data.draw(st.integers(1, size))
    consistency = merkle.consistency_proof_from_leaves(size1, hashes)
    root1 = merkle.root_from_leaves(hashes[:size1])
    merkle.verify_consistency(size1, size, consistency, root1, root)
    if proof:
        position = data.draw(st.integers(0, len(proof) - 1))
        with pytest.raises(ProofError):
            merkle.verify_inclusion(index, size, hashes[index], flip(proof, position), root)
    with pytest.raises(ProofError):
        merkle.verify_inclusion(index, size, leaf(b"forged"), proof, root)
    if consistency:
        position = data.draw(st.integers(0, len(consistency) - 1))
        with pytest.raises(ProofError):
            merkle.verify_consistency(size1, size, flip(consistency, position), root1, root)
    if size1 < size:
        forged = merkle.root_from_leaves([*hashes[: size1 - 1], leaf(b"forged")])
        with pytest.raises(ProofError):
            merkle.verify_consistency(size1, size, consistency, forged, root)


def flip(proof: list[bytes], position: int) -> list[bytes]:
    changed = list(proof)
    changed[position] = bytes([changed[position][0] ^ 1]) + changed[position][1:]
    return changed


def test_every_tampered_proof_of_a_small_tree_fails() -> None:
    hashes = leaves(13)
    root = merkle.root_from_leaves(hashes)
    for index in range(13):
        proof = merkle.inclusion_proof_from_leaves(index, hashes)
        for position in range(len(proof)):
            with pytest.raises(ProofError, match="does not lead to the root"):
                merkle.verify_inclusion(index, 13, hashes[index], flip(proof, position), root)
        for other in set(range(13)) - {index}:
            with pytest.raises(ProofError):
                merkle.verify_inclusion(other, 13, hashes[index], proof, root)
        with pytest.raises(ProofError, match=f"got {len(proof) + 1} hashes, want {len(proof)}"):
            merkle.verify_inclusion(index, 13, hashes[index], [*proof, root], root)


def test_errors_say_what_failed() -> None:
    hashes = leaves(8)
    root = merkle.root_from_leaves(hashes)
    with pytest.raises(ProofError, match="index: got 8, want below the tree size 8"):
        merkle.verify_inclusion(8, 8, hashes[0], [], root)
    with pytest.raises(ProofError, match=r"leaf hash: got 31 bytes, want a 32-byte hash"):
        merkle.verify_inclusion(0, 8, hashes[0][:31], [], root)
    with pytest.raises(ProofError, match="size1: got 9, want at most size2"):
        merkle.verify_consistency(9, 8, [], root, root)
    with pytest.raises(ProofError, match="two different roots for the same size 8"):
        merkle.verify_consistency(8, 8, [], root, hashes[0])
    with pytest.raises(ProofError, match="does not lead to the root of size 8"):
        merkle.verify_consistency(4, 8, merkle.consistency_proof_from_leaves(4, hashes), hashes[0], root)


def test_perfect_subtrees_cover_a_range_left_to_right() -> None:
    assert merkle.perfect_subtrees(0, 7) == [(2, 0), (1, 2), (0, 6)]
    assert merkle.perfect_subtrees(4, 7) == [(1, 2), (0, 6)]
    assert merkle.perfect_subtrees(0, 256) == [(8, 0)]
    assert merkle.perfect_subtrees(256, 300) == [(5, 8), (3, 36), (2, 74)]
    with pytest.raises(ValueError, match="want start < end"):
        merkle.perfect_subtrees(5, 5)


def test_proof_ranges_in_proof_order() -> None:
    assert merkle.inclusion_ranges(5, 8) == [(4, 5), (6, 8), (0, 4)]
    assert merkle.consistency_ranges(6, 8) == [(4, 6), (6, 8), (0, 4)]
    assert merkle.consistency_ranges(4, 8) == [(4, 8)]
    assert merkle.consistency_ranges(8, 8) == []


TILE_PATHS = [
    ((0, 0, 256), "tile/0/000"),
    ((0, 5, 256), "tile/0/005"),
    ((1, 1000, 256), "tile/1/x001/000"),
    ((2, 1234067, 256), "tile/2/x001/x234/067"),
    ((0, 273, 112), "tile/0/273.p/112"),
    ((63, 0, 1), "tile/63/000.p/1"),
]


@pytest.mark.parametrize(("tile", "path"), TILE_PATHS)
def test_tile_paths_round_trip(tile: tuple[int, int, int], path: str) -> None:
    assert merkle.tile_path(*tile) == path
    assert merkle.parse_tile_path(path) == tile


@pytest.mark.parametrize(
    "path",
    [
        "",
        "tile/0",
        "tile/0/",
        "tile/00/000",
        "tile/64/000",
        "tile/-1/000",
        "tile/0/5",
        "tile/0/0005",
        "tile/0/x000/005",
        "tile/0/x001",
        "tile/0/001/x002",
        "tile/0/000.p/0",
        "tile/0/000.p/256",
        "tile/0/000.p/07",
        "tile/0/000.p/",
        "tile/0/000.p/1/",
        "tile/entries/000",
        "/tile/0/000",
        "tile/0/000/",
        "tile/0/../000",
        "tile/0/\u0660\u0660\u0660",  # Arabic-Indic digits, which int() would accept
        "tile/0/0_0",
        "tile/0/ 00",
        "tile/0/000\n",
        "tile/0/" + "x999/" * 20 + "999",
    ],
)
def test_tile_paths_the_spec_does_not_allow_are_refused(path: str) -> None:
    with pytest.raises(ValueError, match="tile path"):
        merkle.parse_tile_path(path)


def test_tiles_of_a_tree_of_70000_leaves_as_the_spec_counts_them() -> None:
    # tlog-tiles: 273 full level-0 tiles and a partial one of 112, one full level-1 tile and a
    # partial one of 17, and a partial level-2 tile of 1.
    assert merkle.partial_tiles(70000) == [(0, 273, 112), (1, 1, 17), (2, 0, 1)]
    assert merkle.tiles_for_size(70000) == [(0, 273, 112), (1, 1, 17), (2, 0, 1)]
    assert merkle.partial_tiles(256) == [(1, 0, 1)]
    assert merkle.tiles_for_size(256) == [(0, 0, 256), (1, 0, 1)]
    assert merkle.partial_tiles(0) == []


def test_a_subtree_hash_is_the_root_of_its_hashes_in_one_tile() -> None:
    hashes = leaves(70000)
    level1 = [merkle.root_from_leaves(hashes[i : i + 256]) for i in range(0, 70000 - 255, 256)]
    for level, index in [(0, 600), (3, 70), (8, 5), (11, 33), (16, 0)]:
        tile_level, tile_index, offset, count = merkle.subtree_tile(level, index)
        below = (
            hashes
            if tile_level == 0
            else level1
            if tile_level == 1
            else [merkle.root_from_leaves(hashes[:65536])]
        )
        first = tile_index * 256 + offset
        assert merkle.root_from_leaves(below[first : first + count]) == naive_root(
            hashes[index << level : (index + 1) << level]
        )
