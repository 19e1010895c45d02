"""The verifiable log in tests: sign a checkpoint of the head now, whichever tick gets there first."""

from __future__ import annotations

from auditlog.app import Service
from auditlog.domain.anchored import SignedCheckpoint


def sign_now(service: Service) -> SignedCheckpoint:
    """The checkpoint of the log's head as of now: this call's tick, or the timer's if it came first."""
    assert service.checkpointer is not None
    signed = service.checkpointer.tick()
    with service.pool.connection() as conn:
        head = conn.execute("SELECT sequence + 1 FROM log_head").fetchone()
        row = conn.execute(
            "SELECT tree_size, root, note FROM checkpoints ORDER BY tree_size DESC LIMIT 1"
        ).fetchone()
    assert head is not None and row is not None
    latest = SignedCheckpoint(int(row[0]), bytes(row[1]), str(row[2]))
    assert latest.tree_size == head[0], (latest.tree_size, head[0])
    assert signed is None or signed == latest
    return latest
