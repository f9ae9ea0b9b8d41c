"""Small builders shared by the log-collector tests."""

from __future__ import annotations

import time
import uuid

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
