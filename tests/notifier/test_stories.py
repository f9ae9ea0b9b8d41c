"""One failure, one mail: alerts grouped by root cause, later steps threaded into the same mail thread."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import time
from pathlib import Path

import pytest

from foto3d.libs.bus.connection import Bus
from foto3d.libs.nats_server import NatsServer
from foto3d.proto import subjects
from foto3d.proto.jobs import JobDead, JobFailed
from foto3d.proto.logs import Level
from foto3d.services.notifier.store import SCHEMA, Store
from testkit.running import running_services
from testkit.servers import SmtpServer
from testkit.waiting import eventually
from tests.notifier.helpers import (
    batch,
    info_lines,
    nothing_left_to_send,
    notifier_of,
    notifier_settings,
    publish_batch,
)

FOTO3D = str(Path(sys.executable).with_name("foto3d"))
CRASHING = "print('loading'); raise RuntimeError('diverged at step 3')"


async def test_bad_dataset_gives_one_mail_not_three(
    tmp_path: Path, nats_server: NatsServer, bus: Bus, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = notifier_settings(tmp_path, nats_server.client_url, monkeypatch, smtp.url)
    async with running_services(settings, ["notifier"], http=False) as rt:
        # what a trainer does with a dataset COLMAP cannot read: logs the error, then the job
        # fails without retry and the queue declares it dead
        await publish_batch(
            bus,
            batch([*info_lines(3), (int(Level.ERROR), "COLMAP found no poses in 12 images")], job_id="job9"),
        )
        now = time.time()
        await bus.publish(
            subjects.job_events("job9"),
            JobFailed(job_id="job9", object_id="acme-desk-lamp-001", ts=now, error="COLMAP found no poses"),
        )
        await bus.publish(
            subjects.job_events("job9"),
            JobDead(
                job_id="job9",
                object_id="acme-desk-lamp-001",
                ts=now,
                attempt=1,
                error="COLMAP found no poses",
            ),
        )
        await eventually(lambda: smtp.inbox.messages, timeout=5, what="the mail")
        await eventually(lambda: nothing_left_to_send(notifier_of(rt), bus), what="nothing left to send")
        assert smtp.inbox.subjects() == [
            "[foto3d CRITICAL] job job9 (acme-desk-lamp-001) is dead after 1 attempt(s)"
        ]
        body = smtp.inbox.messages[0].get_body(("plain",))
        assert body is not None
        text = body.get_content()
        assert (
            "Same cause" in text
            and "job job9 (acme-desk-lamp-001) failed" in text
            and "COLMAP found no poses" in text
        )


async def test_crash_under_foto3d_run_gives_one_mail(
    tmp_path: Path, nats_server: NatsServer, bus: Bus, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = notifier_settings(tmp_path, nats_server.client_url, monkeypatch, smtp.url)
    env = {
        **os.environ,
        "FOTO3D_NATS_URL": nats_server.client_url,
        "FOTO3D_LOG_SPOOL": str(tmp_path / "spool"),
    }
    async with running_services(settings, ["notifier"], http=False) as rt:
        proc = await asyncio.create_subprocess_exec(
            FOTO3D, "run", "--source", "legacy-train", "--", sys.executable, "-c", CRASHING,
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 1, err.decode()
        await eventually(lambda: smtp.inbox.messages, timeout=5, what="the mail")
        await eventually(lambda: nothing_left_to_send(notifier_of(rt), bus), what="nothing left to send")
        (subject,) = smtp.inbox.subjects()
        assert "legacy-train" in subject
        body = smtp.inbox.messages[0].get_body(("plain",))
        assert body is not None
        text = body.get_content()
        assert "RuntimeError: diverged at step 3" in text and "exited with status 1" in text


STALLING = "import sys; sys.stderr.write('turntable: motor stalled at 212 degrees\\n'); sys.exit(2)"


async def test_a_failed_command_under_foto3d_run_is_mailed_with_its_last_stderr_lines(
    tmp_path: Path, nats_server: NatsServer, bus: Bus, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = notifier_settings(tmp_path, nats_server.client_url, monkeypatch, smtp.url)
    env = {
        **os.environ,
        "FOTO3D_NATS_URL": nats_server.client_url,
        "FOTO3D_LOG_SPOOL": str(tmp_path / "spool"),
    }
    async with running_services(settings, ["notifier"], http=False):
        proc = await asyncio.create_subprocess_exec(
            FOTO3D, "run", "--source", "capture-step", "--", sys.executable, "-c", STALLING,
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 2, err.decode()
        await eventually(lambda: smtp.inbox.messages, timeout=5, what="the mail")
        body = smtp.inbox.messages[0].get_body(("plain",))
        assert body is not None
        text = body.get_content().replace("\r\n", "\n")
        assert "exited with status 2" in text
        # In the failure's own section, not only among the context lines.
        assert "Its last stderr lines:\nturntable: motor stalled at 212 degrees" in text


async def test_later_steps_of_a_job_are_threaded_into_its_first_mail(
    tmp_path: Path, nats_server: NatsServer, bus: Bus, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = notifier_settings(tmp_path, nats_server.client_url, monkeypatch, smtp.url)
    async with running_services(settings, ["notifier"], http=False) as rt:
        await bus.publish(
            subjects.job_events("job5"),
            JobFailed(
                job_id="job5", object_id="acme-vase-001", ts=time.time(), attempt=1, error="CUDA out of memory",
                will_retry=True, retry_in_s=30,
            ),
        )  # fmt: skip
        await eventually(lambda: smtp.inbox.messages, timeout=5, what="the first mail")
        # its log errors while the failure is known are inhibited; the final verdict is threaded
        await publish_batch(bus, batch([(int(Level.ERROR), "CUDA out of memory at step 812")], job_id="job5"))
        await bus.publish(
            subjects.job_events("job5"),
            JobDead(
                job_id="job5",
                object_id="acme-vase-001",
                ts=time.time(),
                attempt=3,
                error="CUDA out of memory",
            ),
        )
        await eventually(lambda: len(smtp.inbox.messages) == 2, timeout=5, what="the threaded mail")
        await eventually(lambda: nothing_left_to_send(notifier_of(rt), bus), what="nothing left to send")
        first, second = smtp.inbox.messages
        assert len(smtp.inbox.messages) == 2, smtp.inbox.subjects()
        assert "is dead after 3 attempt(s)" in str(second["Subject"])
        assert second["In-Reply-To"] == first["References"] == second["References"]


async def test_an_alert_database_from_before_stories_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "notifier.sqlite"
    old_schema = (
        SCHEMA.replace("    info TEXT NOT NULL,", "    info TEXT NOT NULL")
        .split("    story TEXT,")[0]
        .rstrip()
        + "\n);"
    )
    with sqlite3.connect(path) as db:
        db.executescript(old_schema)
        db.execute(
            "INSERT INTO alerts(id, fingerprint, kind, severity, title, opened_at, last_at, info) "
            "VALUES ('a1', 'job:j1:failed', 'job_failed', 'error', 'job j1 failed', 1, 1, ?)",
            (
                '{"kind":"job_failed","severity":"error","title":"job j1 failed","what":"x","ts":1,"job_id":"j1"}',
            ),
        )
    store = await Store.open(path)
    try:
        (alert,) = await store.open_alerts()
        assert alert.id == "a1" and alert.story is None and alert.parent_id is None and alert.muted == 0
    finally:
        await store.close()
