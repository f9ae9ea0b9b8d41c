"""Planned stops and restarts: no false alarms, replaced instances resolve and leave the views."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from asyncio.subprocess import DEVNULL, PIPE
from pathlib import Path

import pytest

from foto3d.libs.bus.connection import CREDS_ENV, Bus
from foto3d.libs.heartbeat import HeartbeatSender, Seen, current, predecessors, read_heartbeats
from foto3d.libs.nats_server import NatsServer
from foto3d.proto.heartbeat import Heartbeat
from foto3d.services.notifier.service import Notifier
from testkit.identities import creds_for
from testkit.running import running_services
from testkit.servers import SmtpServer
from testkit.waiting import eventually
from tests.notifier.helpers import notifier_settings, silent_marker


async def test_clean_restart_of_queue_and_notifier_sends_no_mail_and_drops_old_instances(
    tmp_path: Path, nats_server: NatsServer, bus: Bus, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FOTO3D_QUEUE_HEARTBEAT_S", "0.2")  # grace 0.6 s
    settings = notifier_settings(tmp_path, nats_server.client_url, monkeypatch, smtp.url)
    for _ in range(2):  # `up`, Ctrl-C, `up` again
        async with running_services(settings, ["queue", "notifier"], http=False) as rt:
            assert rt.services[0].health().state == "ok"
    async with running_services(settings, ["queue", "notifier"], http=False) as rt:
        svc = rt.services[1]
        assert isinstance(svc, Notifier) and svc.watch is not None
        # a silence after the restart is judged after the old instances' silences (grace 0.6 s)
        marker = await silent_marker(svc, bus, smtp.inbox)
        assert smtp.inbox.subjects() == [marker]
        seen, _ = await read_heartbeats(bus.js)
        shown = current(seen)
        queues = [s for s in shown if s.beat.kind == "queue"]
        notifiers = [s for s in shown if s.beat.kind == "service" and s.beat.id.startswith("notifier.")]
        assert [s.state() for s in queues] == ["alive"], [s.as_dict() for s in queues]
        assert [s.state() for s in notifiers] == ["alive"]
        assert len(seen) > len(shown)  # the stream still holds the old instances' goodbyes
        page = svc.watch.snapshot()
        assert [p["state"] for p in page if p["kind"] == "queue"] == ["alive"]


async def test_trainer_with_a_generated_id_gets_its_recovery_after_a_restart(
    tmp_path: Path, nats_server: NatsServer, bus: Bus, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = notifier_settings(tmp_path, nats_server.client_url, monkeypatch, smtp.url)

    def trainer(pid: int) -> HeartbeatSender:
        # what the trainer service sends without a configured trainer_id: <host>-<pid>
        return HeartbeatSender(
            bus, "trainer", f"gpu-host-{pid}", host="gpu-host", interval=0.2, lineage="trainer"
        )

    async with running_services(settings, ["notifier"], http=False) as rt:
        svc = rt.services[0]
        assert isinstance(svc, Notifier) and svc.watch is not None
        watch = svc.watch
        old = trainer(111)
        old.start()
        await eventually(lambda: ("trainer", "gpu-host-111") in watch.participants, what="first beat")
        await old.stop(clean=False)  # killed: no goodbye
        await eventually(lambda: smtp.inbox.messages, timeout=5, what="the interruption mail")
        assert smtp.inbox.subjects() == ["[foto3d ERROR] trainer gpu-host-111 is silent"]
        new = trainer(222)
        new.start()
        try:
            await eventually(lambda: len(smtp.inbox.messages) == 2, timeout=5, what="the recovery mail")
            assert smtp.inbox.subjects()[1] == "[foto3d RECOVERED] trainer gpu-host-111 is silent"
            body = smtp.inbox.messages[1].get_body(("plain",))
            assert body is not None and "replaced by gpu-host-222" in body.get_content()
            ids = [p["id"] for p in svc.watch.snapshot() if p["kind"] == "trainer"]
            assert ids == ["gpu-host-222"]
        finally:
            await new.stop()


async def test_a_live_sibling_on_the_same_host_is_not_taken_for_replaced(
    tmp_path: Path, nats_server: NatsServer, bus: Bus, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = notifier_settings(tmp_path, nats_server.client_url, monkeypatch, smtp.url)
    a = HeartbeatSender(bus, "queue", "qa", host="h", interval=0.2, lineage="queue")
    b = HeartbeatSender(bus, "queue", "qb", host="h", interval=0.2, lineage="queue")
    async with running_services(settings, ["notifier"], http=False) as rt:
        svc = rt.services[0]
        assert isinstance(svc, Notifier) and svc.watch is not None
        a.start()
        b.start()
        try:
            watch = svc.watch
            await eventually(lambda: {("queue", "qa"), ("queue", "qb")} <= watch.participants.keys())
            both_at = time.time()
            # a later beat of each is the one that would drop the other, were it taken for replaced
            await eventually(
                lambda: all(watch.participants[("queue", q)].seen_at > both_at for q in ("qa", "qb")),
                what="a later beat of each",
            )
            ids = sorted(str(p["id"]) for p in svc.watch.snapshot() if p["kind"] == "queue")
            assert ids == ["qa", "qb"]
            await a.stop(clean=False)  # the standby dies while the leader lives: that is an interruption
            await eventually(lambda: smtp.inbox.messages, timeout=5, what="the interruption mail")
            assert smtp.inbox.subjects() == ["[foto3d ERROR] queue qa is silent"]
        finally:
            await a.stop()
            await b.stop()


async def test_restarted_trainer_process_with_the_default_id_replaces_its_predecessor(
    tmp_path: Path, nats_server: NatsServer, bus: Bus, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = notifier_settings(tmp_path, nats_server.client_url, monkeypatch, smtp.url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOTO3D_")}
    env[CREDS_ENV] = str(creds_for("trainer"))  # the trainer's own key
    argv = [
        "serve",
        "trainer",
        "--nats",
        nats_server.client_url,
        "--data",
        str(settings.data_dir),
        "--no-http",
    ]

    async def trainer_run(previous: set[str]) -> str:
        """Start a trainer process (its id: <host>-<pid>), wait for its beat, Ctrl-C it."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "foto3d.cli.main", *argv, env=env, stdout=DEVNULL, stderr=PIPE
        )
        try:
            ids = await eventually(lambda: _trainer_ids(bus, previous), what="a new trainer's beat")
        finally:
            proc.send_signal(signal.SIGINT)
            _, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err.decode()
        return str(ids[0])

    async with running_services(settings, ["notifier"], http=False) as rt:
        svc = rt.services[0]
        assert isinstance(svc, Notifier) and svc.watch is not None
        first = await trainer_run(set())
        second = await trainer_run({first})
        assert first != second
        seen, _ = await read_heartbeats(bus.js)
        byid = {s.beat.id: s for s in seen if s.beat.kind == "trainer"}
        assert byid[first].beat.lineage == "trainer" and byid[second].state() == "stopped"
        # the older stopped instance was replaced; the latest stays listed as stopped
        assert [s.beat.id for s in current(seen) if s.beat.kind == "trainer"] == [second]
        assert [p["id"] for p in svc.watch.snapshot() if p["kind"] == "trainer"] == [second]
        marker = await silent_marker(svc, bus, smtp.inbox)  # the trainers' stops were judged by then
        assert smtp.inbox.subjects() == [marker]


async def _trainer_ids(bus: Bus, previous: set[str]) -> list[str]:
    seen, _ = await read_heartbeats(bus.js)
    return [
        s.beat.id
        for s in seen
        if s.beat.kind == "trainer" and s.beat.id not in previous and not s.beat.stopping
    ]


def test_an_instance_at_another_site_never_replaces_one_that_beat_only_before_it_started() -> None:
    # Two queue instances on hosts of the same name, one per site: the on-prem one beat once,
    # the cloud one started after that beat, then the on-prem site died. A restart stays at
    # its site, so the cloud instance is no successor and the on-prem silence must be mailed.
    t0 = 1_000.0

    def seen(site: str, ts: float, started: float) -> Seen:
        beat = Heartbeat(
            kind="queue", id=f"vm-{site}-{started:g}", host="vm", version="1", ts=ts, interval_s=1.0,
            lineage="queue", started_at=started, site=site,
        )  # fmt: skip
        return Seen(beat=beat, seen_at=ts)

    onprem = seen("onprem", t0, t0 - 0.1)
    cloud = seen("cloud", t0 + 2.0, t0 + 0.05)
    assert predecessors(cloud, [onprem, cloud], now=t0 + 2.0) == []
    # The same instance restarted at its own site does replace it.
    restarted = seen("onprem", t0 + 2.0, t0 + 1.9)
    assert predecessors(restarted, [onprem, restarted], now=t0 + 2.0) == [onprem]
