"""Building notifier settings and publishing the inputs it watches."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from foto3d.libs.bus.connection import CREDS_ENV, Bus
from foto3d.libs.config import Settings
from foto3d.libs.heartbeat import HeartbeatSender
from foto3d.proto import subjects
from foto3d.proto.logs import Level, LogBatch, LogRecord
from foto3d.services.notifier.service import Notifier
from foto3d.services.notifier.topology import WATCH_JOBS, WATCH_LOGS, WATCH_NOTICES
from testkit.identities import creds_for
from testkit.servers import Inbox
from testkit.waiting import eventually

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


def notifier_of(rt: Any) -> Notifier:
    """The notifier among a test's running services."""
    return next(s for s in rt.services if isinstance(s, Notifier))


async def nothing_left_to_send(svc: Notifier, bus: Bus) -> bool:
    """Whether the notifier has nothing left that could become a mail without new input.

    True once every input it consumes is acknowledged (an input is recorded before its ack),
    no alert's mail falls due within the next minute (a new alert is due one group wait after
    its input) and the outbox holds no pending row (a row waiting for a retry stays pending).
    Probed after the mails a test expects, it proves that no other mail follows: anything
    the inputs caused has gone out by then.
    """
    store = svc.store
    if store is None:
        return False
    for spec in (WATCH_LOGS, WATCH_JOBS, WATCH_NOTICES):
        info = await bus.js.consumer_info(spec.stream, spec.durable)
        if info.num_pending or info.num_ack_pending:
            return False
    due = await store.next_due()
    if due is not None and due < time.time() + 60.0:
        return False
    return not await store.pending()


async def silent_marker(svc: Notifier, bus: Bus, inbox: Inbox) -> str:
    """Make a participant go silent now and wait for its interruption mail; return its subject.

    Heartbeat alerts come from the notifier's periodic check, not from an input it acks, so
    a later silence is the event that proves earlier ones were judged: a participant silent
    since before the marker started, with a grace no longer than the marker's (0.6 s), passed
    it in an earlier check, and its mail (no group wait) went out before the outbox emptied.
    """
    watch = svc.watch
    assert watch is not None
    name = f"marker-{uuid.uuid4().hex[:8]}"
    marker = HeartbeatSender(bus, "service", name, host=name, interval=0.2)
    marker.start()
    try:
        await eventually(lambda: ("service", name) in watch.participants, what="the marker's beat")
    finally:
        await marker.stop(clean=False)  # killed: no goodbye
    subject = f"[foto3d ERROR] service {name} is silent"
    await eventually(lambda: subject in inbox.subjects(), what="the marker's interruption mail")
    await eventually(lambda: nothing_left_to_send(svc, bus), what="nothing left to send")
    return subject


def info_lines(n: int) -> list[tuple[int, str]]:
    return [(int(Level.INFO), f"step {i} loss 0.{i:03d}") for i in range(n)]


def start_notifier_process(
    name: str,
    tmp_path: Path,
    nats_urls: list[str],
    smtp_url: str,
    extra: str = "",
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """``foto3d serve notifier`` as instance ``name`` (data folder and log under tmp_path).

    It runs in its own process group, so a test's ``killpg`` takes it at once, as a host's
    power loss would.
    """
    data = tmp_path / name
    data.mkdir()
    (data / "foto3d.toml").write_text(FAST + extra)
    full = {k: v for k, v in os.environ.items() if not k.startswith("FOTO3D_")}
    full |= {
        CREDS_ENV: str(creds_for("notifier")),
        "FOTO3D_NOTIFIER_INSTANCE": name,
        "FOTO3D_SMTP_URL": smtp_url,
        "FOTO3D_ALERT_TO": "ops@example.com",
        **(env or {}),
    }
    argv = [sys.executable, "-m", "foto3d.cli.main", "serve", "notifier", "--nats", ",".join(nats_urls)]
    argv += ["--data", str(data), "--no-http"]
    log = (tmp_path / f"{name}.log").open("ab")
    return subprocess.Popen(argv, env=full, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop_process_group(proc: subprocess.Popen[bytes]) -> None:
    """End a test's process (SIGTERM, then SIGKILL) if it still runs."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
