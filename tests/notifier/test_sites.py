"""Who watches the watcher: check-ins with an outside URL, and one site's notifier mailing the other's death."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiohttp import web

from foto3d.libs.bus.connection import Bus, connect
from foto3d.libs.heartbeat import read_heartbeats
from foto3d.libs.nats_server import NatsServer
from foto3d.proto.logs import Level
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


def start_queue(site: str, urls: list[str], data: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, **R3, "FOTO3D_SITE": site, "FOTO3D_QUEUE_HEARTBEAT_S": "1"}
    argv = [sys.executable, "-m", "foto3d.cli.main", "serve", "queue", "--nats", ",".join(urls)]
    argv += ["--data", str(data), "--no-http"]
    return subprocess.Popen(
        argv, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True
    )


@pytest.mark.timeout(180)
@pytest.mark.xfail(
    strict=True,
    reason="known regression, open in issue 24: since the round's branches were merged, the cloud "
    "notifier mails 'site onprem down' but no silence mail for the on-prem queue (passed on its branch)",
)
async def test_killing_the_onprem_site_gets_site_down_mailed_by_the_cloud_in_the_queues_thread(
    tmp_path: Path, smtp: SmtpServer
) -> None:
    servers = start_cluster(tmp_path / "nats")
    onprem_urls, cloud_urls = [servers[0].client_url], [s.client_url for s in servers[1:]]
    procs: list[subprocess.Popen[bytes]] = []
    bus = await connect(cloud_urls, "test")
    try:
        await provision_r3(bus, timeout=60)
        procs.append(start_queue("onprem", onprem_urls, tmp_path / "q-onprem", tmp_path / "q-onprem.log"))
        procs.append(start_queue("cloud", cloud_urls, tmp_path / "q-cloud", tmp_path / "q-cloud.log"))
        onprem = start_notifier_process(
            "onprem", tmp_path, onprem_urls, smtp.url, env={"FOTO3D_SITE": "onprem", **R3}
        )
        procs.append(onprem)
        procs.append(
            start_notifier_process(
                "cloud", tmp_path, cloud_urls, smtp.url, env={"FOTO3D_SITE": "cloud", **R3}
            )
        )

        async def sites_announced() -> bool:
            seen, _ = await read_heartbeats(bus.js)
            beats = {(s.beat.kind, s.beat.site) for s in seen if not s.beat.stopping}
            return {("site", "onprem"), ("site", "cloud"), ("queue", "onprem"), ("queue", "cloud")} <= beats

        await eventually(sites_announced, what="both sites announced", timeout=90, interval=0.5)

        # The on-prem site loses power: its hub, its queue, its notifier.
        killed_at = time.time()
        servers[0].kill()
        for p in procs[0], onprem:
            os.killpg(p.pid, signal.SIGKILL)

        def mail(title: str) -> list[int]:
            return [i for i, s in enumerate(smtp.inbox.subjects()) if title in s][:1]

        [site_down] = await eventually(
            lambda: mail("site onprem down"), what="the site-down mail", timeout=60
        )
        after = smtp.inbox.accepted_at[site_down] - killed_at
        print(f"\nsite down mailed {after:.1f} s after the kill")
        assert after < 30
        [queue_silent] = await eventually(lambda: mail("queue "), what="the queue's silence mail", timeout=60)
        site_mail, queue_mail = smtp.inbox.messages[site_down], smtp.inbox.messages[queue_silent]
        assert site_mail["References"] == queue_mail["References"], smtp.inbox.subjects()
        print("\n".join(smtp.inbox.subjects()))
        assert "cloud" not in " ".join(smtp.inbox.subjects())
    finally:
        for p in procs:
            stop_process_group(p)
        await bus.close()
        for s in servers:
            s.stop()
