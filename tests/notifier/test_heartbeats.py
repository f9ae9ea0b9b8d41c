"""Heartbeats: interruption after the grace, recovery when back, restarts, bad input, `foto3d status`."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from asyncio.subprocess import PIPE
from pathlib import Path
from typing import Any

import pytest

from foto3d.libs.bus.connection import Bus
from foto3d.libs.config import ConfigError
from foto3d.libs.heartbeat import HeartbeatSender, read_heartbeats
from foto3d.libs.nats_server import NatsServer
from foto3d.services.notifier.service import Notifier
from foto3d.services.notifier.settings import parse_smtp_url
from testkit.running import running_services
from testkit.servers import SmtpServer
from testkit.signin import sign_in_browser
from testkit.waiting import eventually
from tests.notifier.helpers import notifier_of, notifier_settings, silent_marker


def trainer(bus: Bus, step: list[int]) -> HeartbeatSender:
    return HeartbeatSender(
        bus,
        "trainer",
        "gpu-7",
        host="gpu-host-7",
        interval=0.2,
        state_fn=lambda: {"job_id": "j1", "progress": {"stage": "train", "step": step[0], "total": 100}},
    )


async def test_silent_trainer_raises_interruption_then_recovery_across_a_restart(
    tmp_path: Path, nats_server: NatsServer, bus: Bus, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = notifier_settings(tmp_path, nats_server.client_url, monkeypatch, smtp.url)
    step = [40]
    hb = trainer(bus, step)
    async with running_services(settings, ["notifier"], http=False) as rt:
        svc = rt.services[0]
        assert isinstance(svc, Notifier) and svc.watch is not None
        watch = svc.watch
        hb.start()
        await eventually(lambda: ("trainer", "gpu-7") in watch.participants, what="first beat")
        await hb.stop(clean=False)  # the trainer dies: no goodbye
        silent_at = hb.last_beat_at
        assert silent_at is not None
        await eventually(lambda: smtp.inbox.messages, timeout=5, what="the interruption mail")
        delay = smtp.inbox.accepted_at[0] - silent_at
        assert 0.6 <= delay <= 0.6 + 1.0, delay  # grace = 3 x 0.2 s
        (subject,) = smtp.inbox.subjects()
        assert subject == "[foto3d ERROR] trainer gpu-7 is silent"
        body = smtp.inbox.messages[0].get_body(("plain",))
        assert body is not None and "step 40/100 (40 %)" in body.get_content()
        assert "gpu-host-7" in body.get_content()
    # the notifier restarts while the trainer is still down: no second interruption mail
    async with running_services(settings, ["notifier"], http=False) as rt:
        marker = await silent_marker(notifier_of(rt), bus, smtp.inbox)
        assert smtp.inbox.subjects() == ["[foto3d ERROR] trainer gpu-7 is silent", marker]
        step[0] = 41
        hb = trainer(bus, step)
        hb.start()
        await eventually(lambda: len(smtp.inbox.messages) == 3, timeout=5, what="the recovery mail")
        recovered = smtp.inbox.messages[2]
        assert smtp.inbox.subjects()[2] == "[foto3d RECOVERED] trainer gpu-7 is silent"
        assert recovered["In-Reply-To"] == smtp.inbox.messages[0]["References"]
        # a planned stop (stopping=True) is not an interruption
        await hb.stop(clean=True)
        later = await silent_marker(notifier_of(rt), bus, smtp.inbox)
        assert smtp.inbox.subjects()[3:] == [later]
        seen, _ = await read_heartbeats(bus.js)
        states = {s.key: s.state() for s in seen}
        assert states[("trainer", "gpu-7")] == "stopped"
        assert any(k[0] == "service" and k[1].startswith("notifier.") for k in states)


async def test_malformed_heartbeat_is_ignored_and_counted(
    tmp_path: Path, nats_server: NatsServer, bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = notifier_settings(tmp_path, nats_server.client_url, monkeypatch, None)
    async with running_services(settings, ["notifier"], http=False) as rt:
        svc = rt.services[0]
        assert isinstance(svc, Notifier) and svc.watch is not None
        await bus.nc.publish("f3d.hb.x.y", b'{"type": "heartbeat/1", "kind": "x"}')
        await bus.nc.publish("f3d.hb.x.z", b"not json")
        await eventually(lambda: svc.watch is not None and svc.watch.malformed >= 2, what="malformed count")
        assert "f3d.hb.x" in svc.watch.last_malformed
        assert svc.health().state == "ok" and svc.health().extra["malformed_heartbeats"] >= 2
    _, malformed = await read_heartbeats(bus.js)
    assert malformed == 2


def test_bad_smtp_url_and_bad_heartbeat_names_give_clear_errors() -> None:
    for url, needle in (
        ("http://mail.example.com", "unknown scheme 'http'"),
        ("smtp://", "has no host"),
        ("smtp://host:notaport", "not a valid URL"),
    ):
        with pytest.raises(ConfigError, match=needle):
            parse_smtp_url(url)
    t = parse_smtp_url("smtps://me%40x.org:s3cret@mail.example.com")
    assert (t.host, t.port, t.username, t.password, t.use_tls) == (
        "mail.example.com",
        465,
        "me@x.org",
        "s3cret",
        True,
    )
    assert parse_smtp_url("smtp://mail.example.com").start_tls is None  # STARTTLS when offered
    with pytest.raises(ValueError, match="kind"):
        HeartbeatSender(None, "Bad Kind!", "x")  # type: ignore[arg-type]


async def test_bad_smtp_url_stops_the_notifier_from_starting(
    tmp_path: Path, nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = notifier_settings(tmp_path, nats_server.client_url, monkeypatch, "smtp//oops")
    with pytest.raises(ConfigError, match="FOTO3D_SMTP_URL"):
        async with running_services(settings, ["notifier"], http=False):
            pass


async def cli(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """Run the CLI without blocking the loop (heartbeats in this process keep going)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "foto3d.cli.main", *args, env=env, stdout=PIPE, stderr=PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_status_cli_and_page_list_participants(
    tmp_path: Path, nats_server: NatsServer, bus: Bus, monkeypatch: pytest.MonkeyPatch, page: Any
) -> None:
    settings = notifier_settings(tmp_path, nats_server.client_url, monkeypatch, None)
    job = HeartbeatSender(
        bus,
        "job",
        "j99",
        interval=0.5,
        state_fn=lambda: {"job_id": "j99", "object_id": "acme-vase-001", "progress": {"step": 3, "total": 4}},
    )
    job.start()
    lost = HeartbeatSender(bus, "rig", "rig-2", interval=0.1, state_fn=lambda: {"pending": 5})
    await lost.beat()
    try:
        async with running_services(settings, ["notifier"]) as rt:
            watch = notifier_of(rt).watch
            assert watch is not None

            def rig_lost() -> bool:
                assert watch is not None
                return any(p["id"] == "rig-2" and p["state"] == "lost" for p in watch.snapshot())

            # past the rig's grace (0.3 s) by the notifier's clock, so by the CLI's, which reads later
            await eventually(rig_lost, what="the rig lost")
            env = {**os.environ, "FOTO3D_NATS_URL": nats_server.client_url}
            code, out, err = await cli(env, "status", "--json", "--data", str(tmp_path / "x"))
            assert code == 0, err
            rows = {(r["kind"], r["id"]): r for r in json.loads(out)["participants"]}
            assert rows[("job", "j99")]["state"] == "alive"
            assert rows[("job", "j99")]["progress"] == {"step": 3, "total": 4}
            assert rows[("rig", "rig-2")]["state"] == "lost" and rows[("rig", "rig-2")]["pending"] == 5
            assert any(k == "service" and i.startswith("notifier.") for k, i in rows)
            _, table, _ = await cli(env, "status", "--data", str(tmp_path / "x"))
            assert "STATE" in table and "j99" in table and "75%" in table
            await sign_in_browser(page, settings, rt.http_url)
            await page.goto(rt.http_url + "/status")
            await page.wait_for_selector("tr[data-kind=job][data-id=j99]")
            await page.wait_for_selector("tr[data-kind=job][data-id=j99] .badge.alive")
            await page.wait_for_selector("tr[data-kind=rig] .badge.lost")
            await page.screenshot(path=str(tmp_path / "status.png"))
    finally:
        await job.stop()
