"""Jobs that no trainer can take do not wait in silence: an alert after the configured wait."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from asyncio.subprocess import PIPE
from pathlib import Path
from typing import Any

import pytest

from foto3d.libs.bus.connection import CREDS_ENV, Bus
from foto3d.libs.heartbeat import HeartbeatSender, read_heartbeats
from foto3d.libs.nats_server import NatsServer
from testkit.identities import creds_for
from testkit.running import running_services
from testkit.servers import SmtpServer
from testkit.signin import sign_in_browser
from testkit.waiting import eventually
from tests.notifier.helpers import notifier_of, notifier_settings, silent_marker
from tests.trainer.helpers import make_dataset


async def test_jobs_waiting_without_a_trainer_raise_an_alert_after_the_wait_and_resolve(
    tmp_path: Path, nats_server: NatsServer, bus: Bus, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FOTO3D_ALERT_NO_TRAINER_WAIT", "0.8")
    settings = notifier_settings(tmp_path, nats_server.client_url, monkeypatch, smtp.url)
    queued = [2]
    queue = HeartbeatSender(
        bus, "queue", "q1", interval=0.2, lineage="queue", state_fn=lambda: {"pending": queued[0]}
    )
    trainer = HeartbeatSender(bus, "trainer", "gpu-1", interval=0.2)
    async with running_services(settings, ["notifier"], http=False):
        queue.start()
        started = time.time()
        try:
            await eventually(lambda: smtp.inbox.messages, timeout=5, what="the no-trainer alert")
            assert time.time() - started >= 0.8
            (subject,) = smtp.inbox.subjects()
            assert subject == "[foto3d ERROR] jobs wait: no trainer is alive or can start here"
            body = smtp.inbox.messages[0].get_body(("plain",))
            assert body is not None
            text = body.get_content()
            assert "2 job(s) queued and no trainer is alive or can start here — waiting since" in text
            trainer.start()
            await eventually(lambda: len(smtp.inbox.messages) == 2, timeout=5, what="the resolved mail")
            assert (
                smtp.inbox.subjects()[1]
                == "[foto3d RESOLVED] jobs wait: no trainer is alive or can start here"
            )
            assert smtp.inbox.messages[1]["In-Reply-To"] == smtp.inbox.messages[0]["References"]
        finally:
            await trainer.stop()
            await queue.stop()


async def test_no_alert_while_a_trainer_is_alive_or_nothing_waits(
    tmp_path: Path, nats_server: NatsServer, bus: Bus, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FOTO3D_ALERT_NO_TRAINER_WAIT", "0.3")
    settings = notifier_settings(tmp_path, nats_server.client_url, monkeypatch, smtp.url)
    busy = HeartbeatSender(bus, "queue", "q1", interval=0.2, state_fn=lambda: {"pending": 3})
    trainer = HeartbeatSender(bus, "trainer", "gpu-1", interval=0.2)
    idle = HeartbeatSender(bus, "queue", "q2", host="other", interval=0.2)
    async with running_services(settings, ["notifier"], http=False) as rt:
        trainer.start()
        busy.start()
        idle.start()
        try:
            # The marker starts after the queues: its silence (0.6 s) is judged after the wait
            # for a trainer (0.3 s) ran out, in the same periodic check.
            marker = await silent_marker(notifier_of(rt), bus, smtp.inbox)
            assert smtp.inbox.subjects() == [marker]
        finally:
            for s in (busy, trainer, idle):
                await s.stop()


async def test_submit_and_job_say_that_no_trainer_is_alive(
    tmp_path: Path, nats_server: NatsServer, bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = notifier_settings(tmp_path, nats_server.client_url, monkeypatch, None)
    dataset = make_dataset(tmp_path / "photos")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOTO3D_")}
    env |= {"FOTO3D_NATS_URL": nats_server.client_url, "FOTO3D_DATA": str(settings.data_dir)}
    env[CREDS_ENV] = str(creds_for("staff"))  # a person's key
    async with running_services(settings, ["queue"], http=False):
        code, out, err = await cli(env, "submit", "--object", "acme-oak-chair-001", "--dataset", str(dataset))
        assert code == 0, err
        job_id, _, rest = out.partition(" queued")
        assert "no trainer is alive or can start here — waiting since" in rest, out
        code, out, err = await cli(env, "job", job_id.strip())
        assert code == 0, err
        assert "no trainer is alive or can start here — waiting since" in out
        # once a trainer beats, a waiting job is simply queued
        trainer = HeartbeatSender(bus, "trainer", "gpu-1", interval=0.5)
        trainer.start()
        try:
            await eventually(
                lambda: _read_state(bus, "trainer", "gpu-1"), what="the trainer's beat in the stream"
            )
            code, out, err = await cli(env, "job", job_id.strip())
            assert code == 0 and "no trainer" not in out, out + err
        finally:
            await trainer.stop()


async def _read_state(bus: Bus, kind: str, pid: str) -> bool:
    seen, _ = await read_heartbeats(bus.js)
    return any(s.key == (kind, pid) and s.state() == "alive" for s in seen)


async def cli(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "foto3d.cli.main", *args, env=env, stdout=PIPE, stderr=PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_jobs_page_says_that_no_trainer_is_alive(
    tmp_path: Path, nats_server: NatsServer, bus: Bus, monkeypatch: pytest.MonkeyPatch, page: Any
) -> None:
    settings = notifier_settings(tmp_path, nats_server.client_url, monkeypatch, None)
    dataset = make_dataset(tmp_path / "photos")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOTO3D_")}
    env |= {"FOTO3D_NATS_URL": nats_server.client_url, "FOTO3D_DATA": str(settings.data_dir)}
    env[CREDS_ENV] = str(creds_for("staff"))  # a person's key
    async with running_services(settings, ["queue"]) as rt:
        code, _, err = await cli(env, "submit", "--object", "acme-oak-chair-001", "--dataset", str(dataset))
        assert code == 0, err
        await sign_in_browser(page, settings, rt.http_url)
        await page.goto(rt.http_url + "/jobs")
        banner = page.locator("#no-trainer")
        await banner.wait_for(state="visible")
        text = await banner.text_content() or ""
        assert "1 job(s) queued: no trainer is alive or can start here — waiting since" in text
        trainer = HeartbeatSender(bus, "trainer", "gpu-1", interval=0.5)
        trainer.start()
        try:
            await banner.wait_for(state="hidden")
        finally:
            await trainer.stop()
