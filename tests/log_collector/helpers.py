"""Small builders shared by the log-collector tests."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

from foto3d.proto.logs import LogBatch, LogRecord


def batch(
    n: int,
    *,
    start_seq: int = 0,
    source_id: str = "gpu-1",
    source_kind: str = "trainer",
    level: int = 20,
    job_id: str | None = "job-1",
    object_id: str | None = "obj-1",
    message: str = "step {i} loss 0.{i}",
    ts: float | None = None,
    exc: str | None = None,
    host: str = "host-a",
) -> LogBatch:
    now = time.time() if ts is None else ts
    return LogBatch(
        batch_id=uuid.uuid4().hex,
        source_kind=source_kind,
        source_id=source_id,
        host=host,
        job_id=job_id,
        object_id=object_id,
        records=[
            LogRecord(ts=now + i * 1e-3, seq=start_seq + i, level=level, message=message.format(i=i), exc=exc)
            for i in range(n)
        ],
    )


async def wait_for(
    cond: Callable[[], Awaitable[bool]], timeout: float = 20.0, what: str = "condition"
) -> None:
    """Poll ``cond`` until true (used where the system offers no event to await)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await cond():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
