"""Who watches the watcher: check-ins with an outside URL, and one site's notifier mailing the other's death."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable
from pathlib import Path

import msgspec
import nats.errors
import pytest
from aiohttp import web

from foto3d.libs.bus.connection import Bus, connect
from foto3d.libs.heartbeat import Seen, read_heartbeats
from foto3d.libs.nats_server import NatsServer
from foto3d.proto import subjects
from foto3d.proto.base import encode
from foto3d.proto.heartbeat import Heartbeat, TakeOver
from foto3d.proto.logs import Level
from foto3d.services.notifier.occurrences import interruption_occurrence, takeover_occurrence
from foto3d.services.notifier.store import Store
from foto3d.services.notifier.watch import HeartbeatWatch
from foto3d.services.queue.lease import KEY, LeaseHolder
from foto3d.services.queue.topology import LEADER_LEASE
from testkit.cluster import provision_r3, start_cluster
from testkit.running import running_services
from testkit.servers import SmtpServer
from testkit.site import local_site
from testkit.waiting import eventually
from tests.notifier.helpers import (
    batch,
    notifier_settings,
    publish_batch,
    start_notifier_process,
    stop_process_group,
)


async def test_check_ins_reach_the_outside_url_and_stop_when_the_notifier_dies(
    tmp_path: Path, nats_server: NatsServer, smtp: SmtpServer
) -> None:
    pings: list[float] = []

    async def ping(request: web.Request) -> web.Response:
        pings.append(time.monotonic())
        return web.Response(text="OK")

    app = web.Application()
    app.router.add_get("/ping/abc", ping)
    async with local_site(app) as port:
        url = f"http://127.0.0.1:{port}/ping/abc"
        proc = start_notifier_process(
            "onprem",
            tmp_path,
            [nats_server.client_url],
            smtp.url,
            f'checkin_url = "{url}"\ncheckin_every = 0.2\n',
        )
        try:
            await eventually(lambda: len(pings) >= 3, what="three check-ins", timeout=60)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
            after_kill = len(pings)
            # Proving an absence takes waiting: ten check-in intervals without one.
            await asyncio.sleep(2.0)
            assert len(pings) == after_kill
        finally:
            stop_process_group(proc)


# Every process provisions the topology at start: each must ask for three replicas, or it
# would scale the streams down to one, and the killed node might hold them.
R3 = {"FOTO3D_STREAM_REPLICAS": "3"}


async def test_check_ins_say_fail_while_mail_cannot_go_out(
    tmp_path: Path, nats_server: NatsServer, bus: Bus, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths: list[str] = []

    async def ping(request: web.Request) -> web.Response:
        paths.append(request.path)
        return web.Response(text="OK")

    app = web.Application()
    app.router.add_get("/ping/abc", ping)
    app.router.add_get("/ping/abc/fail", ping)
    async with local_site(app) as port:
        extra = f'checkin_url = "http://127.0.0.1:{port}/ping/abc"\ncheckin_every = 0.2\n'
        settings = notifier_settings(tmp_path, nats_server.client_url, monkeypatch, smtp.url, extra)
        smtp.stop()
        async with running_services(settings, ["notifier"], http=False):
            await publish_batch(bus, batch([(int(Level.CRITICAL), "disk full on /data")]))
            await eventually(lambda: "/ping/abc/fail" in paths, what="a failure check-in")
            smtp.start()
            await eventually(lambda: smtp.inbox.messages, what="the delayed mail")
            seen = len(paths)
            await eventually(lambda: paths[seen:] and paths[-1] == "/ping/abc", what="check-ins back to ok")


def start_queue(
    site: str, urls: list[str], data: Path, log: Path, heartbeat_s: float = 1.0
) -> subprocess.Popen[bytes]:
    env = {**os.environ, **R3, "FOTO3D_SITE": site, "FOTO3D_QUEUE_HEARTBEAT_S": str(heartbeat_s)}
    argv = [sys.executable, "-m", "foto3d.cli.main", "serve", "queue", "--nats", ",".join(urls)]
    argv += ["--data", str(data), "--no-http"]
    return subprocess.Popen(
        argv, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True
    )


async def lease_holder(bus: Bus) -> str | None:
    """The queue instance holding the ``queue-leader`` lease, if any answers."""
    try:
        kv = await bus.js.key_value(LEADER_LEASE.bucket)
        entry = await asyncio.wait_for(kv.get(KEY), 2.0)
        return msgspec.json.decode(entry.value or b"", type=LeaseHolder).instance
    except (TimeoutError, nats.errors.Error, msgspec.DecodeError):
        return None


async def queue_beats(bus: Bus) -> dict[str, Seen]:
    """The queue instances' last live beats, by site."""
    seen, _ = await read_heartbeats(bus.js)
    return {s.beat.site or "": s for s in seen if s.beat.kind == "queue" and not s.beat.stopping}


@pytest.mark.timeout(180)
async def test_killing_the_onprem_site_gets_site_down_mailed_by_the_cloud_in_the_queues_thread(
    tmp_path: Path, smtp: SmtpServer
) -> None:
    servers = start_cluster(tmp_path / "nats")
    onprem_urls, cloud_urls = [servers[0].client_url], [s.client_url for s in servers[1:]]
    procs: list[subprocess.Popen[bytes]] = []
    bus = await connect(cloud_urls, "test")
    try:
        await provision_r3(bus, timeout=60)
        # The on-prem queue beats slowly, so the site dies before its next beat after the cloud
        # standby started: the moment in which a silence looked like a restart (both hosts
        # here have the same name) and was never mailed.
        procs.append(
            start_queue("onprem", onprem_urls, tmp_path / "q-onprem", tmp_path / "q-onprem.log", 5.0)
        )
        onprem = start_notifier_process(
            "onprem", tmp_path, onprem_urls, smtp.url, env={"FOTO3D_SITE": "onprem", **R3}
        )
        procs.append(onprem)
        procs.append(
            start_notifier_process(
                "cloud", tmp_path, cloud_urls, smtp.url, env={"FOTO3D_SITE": "cloud", **R3}
            )
        )

        async def onprem_leads() -> bool:
            seen, _ = await read_heartbeats(bus.js)
            beats = {(s.beat.kind, s.beat.site) for s in seen if not s.beat.stopping}
            queues = await queue_beats(bus)
            leading = "onprem" in queues and await lease_holder(bus) == queues["onprem"].beat.id
            return leading and {("site", "onprem"), ("site", "cloud")} <= beats

        await eventually(onprem_leads, what="both sites announced, on-prem queue leading", timeout=90)
        procs.append(start_queue("cloud", cloud_urls, tmp_path / "q-cloud", tmp_path / "q-cloud.log"))
        queues = await eventually(
            lambda: _with_cloud(queue_beats(bus)), what="the cloud standby's beat", timeout=60
        )

        standby, last_onprem = queues["cloud"].beat, queues["onprem"].beat
        # The on-prem site loses power: its hub, its queue, its notifier.
        killed_at = time.time()
        servers[0].kill()
        for p in procs[0], onprem:
            os.killpg(p.pid, signal.SIGKILL)
        hit = standby.started_at is not None and last_onprem.ts <= standby.started_at
        print(f"\non-prem queue's last beat {'before' if hit else 'after'} the standby started")

        def mail(title: str) -> list[int]:
            return [i for i, s in enumerate(smtp.inbox.subjects()) if title in s][:1]

        [site_down] = await eventually(
            lambda: mail("] site onprem down"), what="the site-down mail", timeout=60
        )
        after = smtp.inbox.accepted_at[site_down] - killed_at
        print(f"site down mailed {after:.1f} s after the kill")
        assert after < 30
        # The queue's takeover: the cloud standby holds the lease, and the on-prem instance's
        # silence is mailed in the site's thread.
        await eventually(
            lambda: _is(lease_holder(bus), standby.id), what="the cloud standby's takeover", timeout=30
        )
        [queue_silent] = await eventually(
            lambda: mail(f"] queue {last_onprem.id} is silent"), what="the queue's silence mail", timeout=60
        )
        # ... and the takeover itself is mailed, in the same thread.
        [taken_over] = await eventually(
            lambda: mail(f"] queue taken over by {standby.id} at cloud"), what="the takeover mail", timeout=60
        )
        site_mail, queue_mail = smtp.inbox.messages[site_down], smtp.inbox.messages[queue_silent]
        thread = site_mail["References"]
        assert thread and queue_mail["References"] == thread, smtp.inbox.subjects()
        assert smtp.inbox.messages[taken_over]["References"] == thread, smtp.inbox.subjects()
        print("\n".join(smtp.inbox.subjects()))
        # Nothing but the takeover speaks of the cloud site: none of its participants went silent.
        others = [s for i, s in enumerate(smtp.inbox.subjects()) if i != taken_over]
        assert "cloud" not in " ".join(others)
    finally:
        for p in procs:
            stop_process_group(p)
        await bus.close()
        for s in servers:
            s.stop()


async def _with_cloud(beats: Awaitable[dict[str, Seen]]) -> dict[str, Seen] | None:
    found = await beats
    return found if "cloud" in found else None


async def _is(value: Awaitable[str | None], wanted: str) -> bool:
    return await value == wanted


def _beat(kind: str, pid: str, site: str, took_over: TakeOver | None = None) -> Seen:
    beat = Heartbeat(kind=kind, id=pid, host="h", version="1", ts=time.time(), site=site, took_over=took_over)
    return Seen(beat=beat, seen_at=time.time())


@pytest.mark.parametrize("takeover_first", [False, True])
async def test_a_takeover_joins_the_thread_of_the_site_it_was_taken_from(
    tmp_path: Path, takeover_first: bool
) -> None:
    store = await Store.open(tmp_path / "notifier.sqlite")
    try:
        site_down = interruption_occurrence(_beat("site", "onprem", "onprem"))
        moved = TakeOver(at=time.time(), previous="q-old", previous_host="h", previous_site="onprem")
        takeover = takeover_occurrence(_beat("queue", "q-new", "cloud", moved))
        assert takeover is not None
        assert takeover.info.title == "queue taken over by q-new at cloud"
        order = [takeover, site_down] if takeover_first else [site_down, takeover]
        for occ in order:
            await store.record([occ], occ.fingerprint, 0.0)
        first = await store.open_alert(order[0].fingerprint)
        second = await store.open_alert(order[1].fingerprint)
        assert first is not None and second is not None
        # Both are mailed (neither is muted), in one thread.
        assert second.thread_root == first.id and not second.muted
    finally:
        await store.close()


async def test_the_watch_hands_on_each_takeover_once_and_not_a_planned_handover(bus: Bus) -> None:
    taken: list[str] = []

    async def on_takeover(seen: Seen) -> None:
        taken.append(seen.beat.id)

    async def lost(seen: Seen) -> None:
        pass

    async def back(seen: Seen, reason: str) -> None:
        pass

    watch = HeartbeatWatch(bus, lost, back, set(), on_takeover=on_takeover)
    await watch.start()

    async def beat(pid: str, site: str, previous: str = "", was_at: str = "", stopping: bool = False) -> None:
        t = (
            TakeOver(at=1000.0, previous=previous, previous_host="h", previous_site=was_at)
            if previous
            else None
        )
        b = msgspec.structs.replace(_beat("queue", pid, site, t).beat, stopping=stopping)
        await bus.nc.publish(subjects.heartbeat("queue", pid), encode(b))

    try:
        # A restart at one site: the old leader said goodbye, then the standby took over.
        await beat("q-old", "onprem", stopping=True)
        await eventually(lambda: ("queue", "q-old") in watch.participants, what="the goodbye")
        await beat("q-new", "onprem", previous="q-old", was_at="onprem")
        # The leader of a site that fell silent, taken over from the other site, beating twice.
        await beat("q-lost", "onprem")
        await eventually(lambda: ("queue", "q-lost") in watch.participants, what="the silent leader")
        await beat("q-cloud", "cloud", previous="q-lost", was_at="onprem")
        await beat("q-cloud", "cloud", previous="q-lost", was_at="onprem")
        await beat("q-after", "cloud", previous="q-cloud", was_at="cloud")
        # Beats arrive in order: once the last takeover is in, the earlier ones were judged.
        await eventually(lambda: "q-after" in taken, what="the last takeover")
        assert taken == ["q-cloud", "q-after"]
    finally:
        await watch.stop()
