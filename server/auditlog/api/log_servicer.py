"""LogService: checkpoints, inclusion and consistency proofs, and tlog-tiles hash tiles.

Every size a client names is checked against the latest signed checkpoint: the tree is served up to
what the log has signed, never beyond.
"""

from __future__ import annotations

import grpc
from google.api import httpbody_pb2  # type: ignore[import-untyped]

from audit.v1 import log_service_pb2 as pb
from audit.v1 import log_service_pb2_grpc
from auditlog.domain.merkle import TILE_HEIGHT, TILE_WIDTH, parse_tile_path
from auditlog.domain.notes import format_tlog_proof
from auditlog.domain.validation import validate_uuid
from auditlog.errors import FailedPreconditionError, FieldViolation, InvalidArgumentError, NotFoundError
from auditlog.storage.api import SignedTreeHead, TreeReads, TreeView

CHECKPOINT_TYPE = "text/plain; charset=utf-8"
TILE_TYPE = "application/octet-stream"


def _invalid(field: str, description: str) -> InvalidArgumentError:
    return InvalidArgumentError([FieldViolation(field, description)])


class LogServicer(log_service_pb2_grpc.LogServiceServicer):
    """The audit.v1.LogService methods over the stored tree (storage.api.TreeReads)."""

    def __init__(self, tree: TreeReads, origin: str, verifier_key: str) -> None:
        self._tree = tree
        self._origin = origin
        self._verifier_key = verifier_key

    @staticmethod
    def _latest(tree: TreeView) -> SignedTreeHead:
        latest = tree.latest()
        if latest is None:
            raise FailedPreconditionError("no checkpoint has been signed yet; retry in a second")
        return latest

    @staticmethod
    def _size(field: str, value: int, latest: SignedTreeHead, low: int = 0) -> int:
        """value, or the latest checkpoint's size for 0; within [low, latest]."""
        size = value or latest.tree_size
        if size < low or size > latest.tree_size:
            raise _invalid(
                field, f"got {value}, want {low} to {latest.tree_size} (the latest checkpoint's size)"
            )
        return size

    def GetLogInfo(self, request: pb.GetLogInfoRequest, context: grpc.ServicerContext) -> pb.LogInfo:
        with self._tree.session() as tree:
            latest = tree.latest()
        return pb.LogInfo(
            origin=self._origin,
            verifier_key=self._verifier_key,
            tree_size=0 if latest is None else latest.tree_size,
        )

    def GetCheckpoint(
        self, request: pb.GetCheckpointRequest, context: grpc.ServicerContext
    ) -> httpbody_pb2.HttpBody:
        with self._tree.session() as tree:
            latest = self._latest(tree)
            found = latest
            if request.HasField("tree_size") and request.tree_size != latest.tree_size:
                if not 0 <= request.tree_size < latest.tree_size:
                    raise _invalid(
                        "tree_size",
                        f"got {request.tree_size}, want 0 to {latest.tree_size} (the latest checkpoint's size)",
                    )
                at_size = tree.checkpoint(request.tree_size)
                if at_size is None:
                    raise NotFoundError(f"no checkpoint was signed at tree size {request.tree_size}")
                found = at_size
        return httpbody_pb2.HttpBody(content_type=CHECKPOINT_TYPE, data=found.note.encode())

    def GetInclusionProof(
        self, request: pb.GetInclusionProofRequest, context: grpc.ServicerContext
    ) -> pb.InclusionProof:
        with self._tree.session() as tree:
            if request.id:
                leaf = tree.leaf(event_id=validate_uuid("id", request.id))
                missing = f"no audit event has id {request.id}"
            elif request.HasField("sequence"):
                if request.sequence < 0:
                    raise _invalid("sequence", f"got {request.sequence}, want 0 or more")
                leaf = tree.leaf(sequence=request.sequence)
                missing = f"no audit event has sequence {request.sequence}"
            else:
                raise _invalid("id", "got nothing, want an event id (or a sequence)")
            if leaf is None:
                raise NotFoundError(missing)
            latest = self._latest(tree)
            if not request.tree_size and leaf.sequence >= latest.tree_size:
                raise FailedPreconditionError(
                    f"event {leaf.sequence} is not in a signed checkpoint yet (latest tree size"
                    f" {latest.tree_size}); retry after the checkpoint interval"
                )
            size = self._size("tree_size", request.tree_size, latest, low=leaf.sequence + 1)
            proof = tree.inclusion_proof(leaf.sequence, size)
            checkpoint = latest if size == latest.tree_size else tree.checkpoint(size)
        note = "" if checkpoint is None else checkpoint.note
        return pb.InclusionProof(
            id=leaf.id,
            sequence=leaf.sequence,
            tree_size=size,
            leaf_hash=leaf.leaf_hash,
            hashes=proof,
            checkpoint=note,
            tlog_proof=format_tlog_proof(leaf.sequence, proof, note) if note else "",
        )

    def GetTlogProof(
        self, request: pb.GetTlogProofRequest, context: grpc.ServicerContext
    ) -> httpbody_pb2.HttpBody:
        if not request.id:
            raise _invalid("id", "got nothing, want an event id")
        proof = self.GetInclusionProof(
            pb.GetInclusionProofRequest(id=request.id, tree_size=request.tree_size), context
        )
        if not proof.tlog_proof:
            raise FailedPreconditionError(
                f"no checkpoint was signed at tree size {proof.tree_size}; ask for a signed size"
            )
        context.send_initial_metadata(
            (("content-disposition", f'attachment; filename="{proof.id}.tlog-proof"'),)
        )
        return httpbody_pb2.HttpBody(content_type=CHECKPOINT_TYPE, data=proof.tlog_proof.encode())

    def GetConsistencyProof(
        self, request: pb.GetConsistencyProofRequest, context: grpc.ServicerContext
    ) -> pb.ConsistencyProof:
        if request.first < 1:
            raise _invalid("first", f"got {request.first}, want at least 1")
        with self._tree.session() as tree:
            latest = self._latest(tree)
            second = self._size("second", request.second, latest)
            if request.first > second:
                raise _invalid("first", f"got {request.first}, want at most second ({second})")
            proof = tree.consistency_proof(request.first, second)
            checkpoint = latest if second == latest.tree_size else tree.checkpoint(second)
        return pb.ConsistencyProof(
            first=request.first,
            second=second,
            hashes=proof,
            checkpoint="" if checkpoint is None else checkpoint.note,
        )

    def GetTile(self, request: pb.GetTileRequest, context: grpc.ServicerContext) -> httpbody_pb2.HttpBody:
        try:
            level, index, width = parse_tile_path(request.path)
        except ValueError:
            raise _invalid("path", f"got {request.path[:80]!r}, want tile/<L>/<N>[.p/<W>]") from None
        with self._tree.session() as tree:
            # Hashes at this level in the tree of the latest checkpoint.
            available = self._latest(tree).tree_size >> (TILE_HEIGHT * level)
            if index * TILE_WIDTH + width > available:
                raise NotFoundError(f"tile {request.path} is beyond the latest checkpoint")
            data = tree.tile(level, index, width)
        return httpbody_pb2.HttpBody(content_type=TILE_TYPE, data=data)
