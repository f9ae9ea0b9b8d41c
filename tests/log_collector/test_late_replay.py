"""Lines that arrive after newer ones (a spool replay, a rig's late upload) are read in time order.

Every reader: the NATS query, `foto3d logs` (a page and --follow), `GET /api/logs` with its
cursor, the Logs page's live tail in Chromium, and the notifier's "lines around the error".
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from foto3d.libs.bus.connection import Bus
from foto3d.libs.config import Settings
from foto3d.libs.logsdk import LogShipper
from foto3d.libs.logsdk.spool import Spool
from foto3d.proto import subjects
from foto3d.proto.logs import LOG_QUERY, LogQuery
from foto3d.services.log_collector.service import LogCollector
from foto3d.services.notifier.log_context import LogContext
from foto3d.services.notifier.model import AlertInfo
from testkit.running import running_services
from testkit.servers import free_port
from testkit.signin import sign_in_browser, staff_cookie
from testkit.waiting import eventually
from tests.log_collector.helpers import batch

FOTO3D = [sys.executable, "-m", "foto3d.cli.main"]
JOB = "job-late"


async def foto3d(*args: str) -> list[dict[str, Any]]:
    proc = await asyncio.create_subprocess_exec(
        *FOTO3D, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return [json.loads(line) for line in out.decode().splitlines()]


def spool_offline_lines(spool: Path, t0: float) -> None:
    """A rig cut off from NATS logs 300 lines; they wait in its spool."""
    dead = f"nats://127.0.0.1:{free_port()}"
    offline = LogShipper("rig", "rig-off", nats_urls=[dead], spool_dir=spool, heartbeat=False, job_id=JOB)
    for i in range(300):
        offline.emit(20, f"offline {i}", ts=t0 + i * 0.01)
    offline.close(2)
    assert sum(e.records for e in Spool(spool, 1 << 40).entries()) == 300


async def test_late_replays_are_read_in_time_order_by_every_reader(
    page: Any, settings: Settings, bus: Bus, tmp_path: Path
) -> None:
    now = time.time()
    t_offline, t_upload, t_live = now - 120, now - 60, now - 30
    spool = tmp_path / "spool"
    await asyncio.to_thread(spool_offline_lines, spool, t_offline)
    url = (settings.nats_urls or [""])[0]
    # What every reader must show, newest first: the live lines, then the rig's upload, then
    # the spooled ones, although they arrive in the opposite order.
    expected = (
        [f"live {i}" for i in range(49, -1, -1)]
        + [f"uploaded {i}" for i in range(19, -1, -1)]
        + [f"offline {i}" for i in range(299, -1, -1)]
    )
    async with running_services(settings, ["log_collector"]) as rt:
        (svc,) = rt.services
        assert isinstance(svc, LogCollector) and svc.store is not None
        store = svc.store

        async def stored(n: int) -> None:
            async def check() -> bool:
                return await store.count() == n

            await eventually(check, what=f"{n} records stored")

        # The newer lines arrive first.
        await bus.publish(
            subjects.logs("trainer", "gpu-1"), batch(50, ts=t_live, job_id=JOB, message="live {i}")
        )
        await stored(50)

        # Readers that are open while the late lines come in: the page's live tail, --follow.
        await sign_in_browser(page, settings, rt.http_url)
        await page.goto(rt.http_url + f"/logs?job={JOB}&live=1")
        await page.wait_for_function("document.querySelectorAll('#log-table tbody tr').length === 50")
        await eventually(_has_subscriber(svc), what="the page's live stream")
        follow = await asyncio.create_subprocess_exec(
            *FOTO3D, "logs", "--nats", url, "--job", JOB, "-n", "1", "-f", "--json",
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            assert follow.stdout is not None
            first = json.loads(await asyncio.wait_for(follow.stdout.readline(), 30))
            assert first["message"] == "live 49" and "late" not in first

            # A rig's late upload, then the spool's replay (by a shipper that finds it on start).
            await bus.publish(
                subjects.logs("rig", "rig-up"),
                batch(20, ts=t_upload, source_kind="rig", source_id="rig-up", job_id=JOB, message="uploaded {i}"),
            )  # fmt: skip
            replayer = LogShipper("rig", "rig-replayer", nats_urls=[url], spool_dir=spool, heartbeat=False)
            try:
                await stored(370)
            finally:
                await asyncio.to_thread(replayer.close, 10)

            # --follow: every late line is flagged as such.
            followed = [json.loads(await asyncio.wait_for(follow.stdout.readline(), 30)) for _ in range(320)]
            assert {r["message"] for r in followed} == set(expected[50:])
            assert all(r.get("late") is True for r in followed)
        finally:
            follow.terminate()
            await follow.wait()

        # The Logs page put each late line where it was written, and marked it.
        await page.wait_for_function("document.querySelectorAll('#log-table tbody tr').length === 370")
        shown = await page.eval_on_selector_all(
            "#log-table tbody tr td.msg", "tds => tds.map(td => td.textContent)"
        )
        assert shown == expected
        assert await page.locator("#log-table tbody tr.late .late-tag").count() == 320

        # The NATS query: the newest lines are the newest written; pages follow time order.
        newest = await bus.call(LOG_QUERY, LogQuery(job_id=JOB, limit=3))
        assert [r.message for r in newest.records] == expected[:3]
        newest_rig = await bus.call(LOG_QUERY, LogQuery(source_id="rig-off", limit=3))
        assert [r.message for r in newest_rig.records] == ["offline 299", "offline 298", "offline 297"]

        # `foto3d logs` prints the newest N, oldest first.
        rows = await foto3d("logs", "--nats", url, "--job", JOB, "--limit", "60", "--json")
        assert [r["message"] for r in rows] == expected[:60][::-1]

        # GET /api/logs, paged with its cursor.
        got: list[str] = []
        params = {"job": JOB, "limit": "150"}
        async with aiohttp.ClientSession(cookies=await staff_cookie(settings)) as http:
            while True:
                async with http.get(rt.http_url + "/api/logs", params=params) as r:
                    assert r.status == 200
                    body = await r.json()
                got += [x["message"] for x in body["records"]]
                if not body.get("next_before"):
                    break
                params["before"] = body["next_before"]
        assert got == expected

        # The mail's "lines around the error": the lines written before it, replayed or not.
        context = LogContext(bus, lines=4, timeout=10)
        info = AlertInfo(
            kind="job_failed",
            severity="error",
            title="t",
            what="w",
            ts=t_offline + 2.005,
            job_id=JOB,
        )
        lines = await context.around(info)
        assert [c.message for c in lines] == ["offline 197", "offline 198", "offline 199", "offline 200"]


def _has_subscriber(svc: LogCollector) -> Any:
    async def check() -> bool:
        return svc.hub.active

    return check
