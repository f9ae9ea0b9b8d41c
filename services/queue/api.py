"""Request/reply subjects of the queue (under ``f3d.api.*``, outside every stream)."""

from __future__ import annotations

SUBMIT = "f3d.api.jobs.submit"
LIST = "f3d.api.jobs.list"
GET = "f3d.api.jobs.get"
CANCEL = "f3d.api.jobs.cancel"
REQUEUE = "f3d.api.jobs.requeue"

# Only the current leader listens here; the other instances forward commands to it.
LEADER_PREFIX = "f3d.api.queue.leader"


def leader(op: str) -> str:
    return f"{LEADER_PREFIX}.{op}"
