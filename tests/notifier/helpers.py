"""Building notifier settings and publishing the inputs it watches."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from foto3d.libs.bus.connection import Bus
from foto3d.libs.config import Settings
from foto3d.proto import subjects
from foto3d.proto.logs import Level, LogBatch, LogRecord

FAST = """
[notifier]
group_wait = 0.25
repeat_interval = 3600
retry_max = 0.4
context_timeout = 0.3
rate_limit_per_hour = 0
"""


def notifier_settings(
    tmp_path: Path,
    nats_url: str,
    monkeypatch: pytest.MonkeyPatch,
    smtp_url: str | None,
    extra: str = "",
    data_name: str = "data",
) -> Settings:
    data = tmp_path / data_name
    data.mkdir(exist_ok=True)
    (data / "foto3d.toml").write_text(FAST + extra)
    if smtp_url:
        monkeypatch.setenv("FOTO3D_SMTP_URL", smtp_url)
    else:
        monkeypatch.delenv("FOTO3D_SMTP_URL", raising=False)
    monkeypatch.setenv("FOTO3D_ALERT_TO", "ops@example.com")
    monkeypatch.delenv("FOTO3D_ALERT_WEBHOOK", raising=False)
    return Settings.load(data_dir=data, nats=nats_url, http_port=0)


def batch(
    messages: list[tuple[int, str]],
    *,
    source_kind: str = "trainer",
    source_id: str = "gpu-1",
    job_id: str | None = "job42",
    object_id: str | None = "acme-desk-lamp-001",
    seq0: int = 0,
) -> LogBatch:
    now = time.time()
    n = len(messages)
    recs = [
        LogRecord(
            ts=now - (n - i) * 0.001, seq=seq0 + i, level=lvl, message=msg, logger="train", host="gpu-host"
        )
        for i, (lvl, msg) in enumerate(messages)
    ]
    return LogBatch(
        batch_id=uuid.uuid4().hex,
        source_kind=source_kind,
        source_id=source_id,
        host="gpu-host",
        records=recs,
        job_id=job_id,
        object_id=object_id,
    )


async def publish_batch(bus: Bus, b: LogBatch) -> None:
    await bus.publish(subjects.logs(b.source_kind, b.source_id), b, msg_id=b.batch_id)


def info_lines(n: int) -> list[tuple[int, str]]:
    return [(int(Level.INFO), f"step {i} loss 0.{i:03d}") for i in range(n)]
