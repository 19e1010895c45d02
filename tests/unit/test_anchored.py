"""AnchorCheck: the leaves fed in order lead to each anchored checkpoint's root, or the first one
they do not is named; checkpoints inside a tile and on its edges alike."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditlog.domain.anchored import AnchorCheck, SignedCheckpoint, StreamingRoot
from auditlog.domain.merkle import root_from_leaves

LEAVES = [hashlib.sha256(b"\x00" + i.to_bytes(4, "big")).digest() for i in range(3_000)]
SIZES = [1, 2, 3, 255, 256, 257, 511, 512, 513, 1_000, 1_024, 1_025, 2_047, 2_048, 2_999, 3_000]


def checkpoint(size: int, leaves: list[bytes] = LEAVES) -> SignedCheckpoint:
    return SignedCheckpoint(size, root_from_leaves(leaves[:size]), "")


def fed(check: AnchorCheck, leaves: list[bytes]) -> AnchorCheck:
    for leaf in leaves:
        check.feed(leaf)
    return check


def test_matching_checkpoints_at_tile_edges_and_inside_tiles_pass() -> None:
    check = fed(AnchorCheck(checkpoint(n) for n in SIZES), LEAVES)
    assert check.finish() is None
    assert check.leaves == len(LEAVES)


@pytest.mark.parametrize("size", SIZES)
def test_a_wrong_root_is_named_at_its_size(size: int) -> None:
    forged = SignedCheckpoint(size, hashlib.sha256(b"other").digest(), "")
    check = fed(AnchorCheck([checkpoint(1), forged, checkpoint(3_000)]), LEAVES)
    assert check.first_mismatch() == forged
    assert check.finish() == forged


def test_a_changed_leaf_fails_the_first_checkpoint_covering_it() -> None:
    changed = list(LEAVES)
    changed[700] = hashlib.sha256(b"rewritten").digest()
    check = fed(AnchorCheck(checkpoint(n) for n in (256, 700, 701, 1_024)), changed)
    mismatch = check.finish()
    assert mismatch is not None and mismatch.tree_size == 701


def test_a_shorter_log_leaves_the_next_checkpoint_unmatched() -> None:
    check = fed(AnchorCheck(checkpoint(n) for n in (512, 2_000)), LEAVES[:1_999])
    assert check.first_mismatch() is None
    unmatched = check.finish()
    assert unmatched is not None and unmatched.tree_size == 2_000
    assert check.leaves == 1_999


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=3_000), min_size=1, max_size=6), st.integers(0, 2_999))
def test_the_streamed_roots_equal_the_recomputed_ones(sizes: list[int], fed_count: int) -> None:
    check = fed(AnchorCheck(checkpoint(n) for n in sizes), LEAVES[:fed_count])
    pending = sorted(n for n in sizes if n > fed_count)
    unmatched = check.finish()
    assert (unmatched.tree_size if unmatched else None) == (pending[0] if pending else None)


def test_streaming_root_of_each_prefix() -> None:
    tree = StreamingRoot()
    for n, leaf in enumerate(LEAVES[:600], start=1):
        tree.push(leaf)
        assert tree.root() == root_from_leaves(LEAVES[:n])
