"""Error records and job events become mail: content, grouping, SMTP outages, restarts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiohttp import web

from foto3d.libs.bus.connection import Bus
from foto3d.libs.nats_server import NatsServer
from foto3d.proto import subjects
from foto3d.proto.alerts import AlertRaised
from foto3d.proto.jobs import JobDead, JobFailed
from foto3d.proto.logs import LOG_QUERY, Level, LogQuery
from testkit.running import running_services
from testkit.servers import SmtpServer, free_port
from testkit.signin import sign_in_browser
from testkit.waiting import eventually
from tests.notifier.helpers import (
    batch,
    info_lines,
    nothing_left_to_send,
    notifier_of,
    notifier_settings,
    publish_batch,
)


async def test_error_record_gives_one_mail_with_content_and_webhook(
    tmp_path: Path, nats_server: NatsServer, bus: Bus, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    hooks: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        hooks.append(await request.json())
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    settings = notifier_settings(tmp_path, nats_server.client_url, monkeypatch, smtp.url)
    monkeypatch.setenv("FOTO3D_ALERT_WEBHOOK", f"http://127.0.0.1:{port}/hook")
    alerts_sub = await bus.js.subscribe(subjects.ALERTS_ALL, ordered_consumer=True)
    try:
        async with running_services(settings, ["log_collector", "notifier"]) as rt:
            # 30 lines stored earlier by the log collector, then a batch of 5 ending in the error:
            # the mail's 20 lines come from both (the store and the batch at hand)
            await publish_batch(bus, batch(info_lines(30)))
            q = LogQuery(job_id="job42", limit=50)

            async def stored() -> int:
                return len((await bus.call(LOG_QUERY, q)).records)

            async def all_stored() -> bool:
                return await stored() == 30

            await eventually(all_stored, what="the 30 info lines in the log store", interval=0.02)
            err = (int(Level.ERROR), "CUDA out of memory while training")
            await publish_batch(bus, batch([*info_lines(34)[30:], err], seq0=30))
            await eventually(lambda: smtp.inbox.messages, what="the alert mail")
            await eventually(lambda: hooks, what="the webhook")
            svc = notifier_of(rt)
            await eventually(lambda: nothing_left_to_send(svc, bus), what="nothing left to send")
            assert len(smtp.inbox.messages) == 1
            msg = smtp.inbox.messages[0]
            assert smtp.inbox.rcpts[0] == ["ops@example.com"]
            assert (
                smtp.inbox.subjects()[0]
                == "[foto3d ERROR] ERROR in trainer gpu-1: CUDA out of memory while training"
            )
            assert msg["Message-ID"].endswith("@foto3d>")
            text = msg.get_body(("plain",))
            html = msg.get_body(("html",))
            assert text is not None and html is not None
            body, hbody = text.get_content(), html.get_content()
            for needle in ("CUDA out of memory", "job42", "acme-desk-lamp-001", "gpu-host", "trainer gpu-1"):
                assert needle in body and needle in hbody
            assert f"{rt.http_url}/logs?job=job42" in body
            assert f'href="{rt.http_url}/logs?job=job42"' in hbody
            assert "Last 20 log lines:" in body
            # the 19 lines before the error and the error itself, oldest first
            ctx = body.split("Last 20 log lines:")[1].strip().splitlines()[:20]
            assert "step 15 loss" in ctx[0] and "step 33 loss" in ctx[18] and "CUDA out of memory" in ctx[19]
            assert "step 14 loss" not in body
            assert hooks[0]["text"].startswith("*ERROR:")
            ev = await alerts_sub.next_msg(timeout=5)
            raised = msgspec.json.decode(ev.data, type=AlertRaised)
            assert raised.kind == "log_error" and raised.job_id == "job42"
            health = notifier_of(rt).health()
            assert health.state == "ok"
    finally:
        await alerts_sub.unsubscribe()
        await runner.cleanup()


async def test_burst_of_100_identical_errors_gives_one_grouped_mail(
    tmp_path: Path, nats_server: NatsServer, bus: Bus, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = notifier_settings(tmp_path, nats_server.client_url, monkeypatch, smtp.url)
    async with running_services(settings, ["notifier"], http=False) as rt:
        # 4 batches x 25 records; the numbers differ but the error is the same
        for b in range(4):
            recs = [(int(Level.ERROR), f"upload of part {b * 25 + i} failed: timeout") for i in range(25)]
            await publish_batch(bus, batch(recs, seq0=b * 25))
        await eventually(lambda: smtp.inbox.messages, what="the grouped mail")
        svc = notifier_of(rt)
        await eventually(lambda: nothing_left_to_send(svc, bus), what="nothing left to send")
        assert len(smtp.inbox.messages) == 1
        assert smtp.inbox.subjects()[0].startswith(
            "[foto3d ERROR] (×100) ERROR in trainer gpu-1: upload of part"
        )
        body = smtp.inbox.messages[0].get_body(("plain",))
        assert body is not None and "100 occurrences" in body.get_content()


async def test_smtp_down_then_mail_delivered_once(
    tmp_path: Path, nats_server: NatsServer, bus: Bus, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = notifier_settings(tmp_path, nats_server.client_url, monkeypatch, smtp.url)
    smtp.stop()
    async with running_services(settings, ["notifier"]) as rt:
        svc = notifier_of(rt)
        await publish_batch(bus, batch([(int(Level.CRITICAL), "disk full on /data")]))
        await eventually(lambda: svc.health().state == "degraded", what="degraded health")
        assert "cannot send alerts" in svc.health().detail
        await eventually(lambda: svc.sender is not None and svc.sender.health.failures >= 2, what="retries")
        smtp.start()
        await eventually(lambda: smtp.inbox.messages, what="the delayed mail")
        await eventually(lambda: svc.health().state == "ok", what="health back to ok")
        # a duplicate would be a row still pending for another try
        await eventually(lambda: nothing_left_to_send(svc, bus), what="nothing left to send")
        assert smtp.inbox.subjects() == ["[foto3d CRITICAL] CRITICAL in trainer gpu-1: disk full on /data"]


async def test_restart_mid_alert_neither_duplicates_nor_loses(
    tmp_path: Path, nats_server: NatsServer, bus: Bus, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A long group wait holds the first mail back while the notifier is stopped and started.
    settings = notifier_settings(
        tmp_path, nats_server.client_url, monkeypatch, smtp.url, extra="resolve_after = 3600\n"
    )
    settings.raw["notifier"]["group_wait"] = 1.5
    async with running_services(settings, ["notifier"], http=False) as rt:
        svc = notifier_of(rt)
        await publish_batch(bus, batch([(int(Level.ERROR), "render crashed")]))
        store = svc.store
        assert store is not None
        await eventually(store.open_alerts, what="the alert recorded before the restart", interval=0.02)
        assert not smtp.inbox.messages
    # restarted: the recorded alert is still due, the log batch is not counted twice
    async with running_services(settings, ["notifier"], http=False) as rt:
        await eventually(lambda: smtp.inbox.messages, what="the mail after restart")
        await publish_batch(bus, batch([(int(Level.ERROR), "render crashed")]))
        svc = notifier_of(rt)
        await eventually(lambda: nothing_left_to_send(svc, bus), what="the batch counted, nothing to send")
        assert smtp.inbox.subjects() == ["[foto3d ERROR] ERROR in trainer gpu-1: render crashed"]
        store = notifier_of(rt).store
        assert store is not None
        (alert,) = await store.open_alerts()
        assert alert.count == 2 and alert.mailed_count == 1 and alert.next_mail_at is not None


async def test_job_events_without_smtp_go_to_local_outbox_and_alerts_page(
    tmp_path: Path, nats_server: NatsServer, bus: Bus, monkeypatch: pytest.MonkeyPatch, page: Any
) -> None:
    settings = notifier_settings(tmp_path, nats_server.client_url, monkeypatch, None)
    async with running_services(settings, ["notifier"]) as rt:
        svc = notifier_of(rt)
        assert "no SMTP server configured" in svc.banner()[0]
        now = 1_700_000_000.0
        failed = JobFailed(
            job_id="j7", object_id="acme-chair-002", ts=now, error="COLMAP found no poses", will_retry=False
        )
        dead = JobDead(
            job_id="j8", object_id="acme-chair-003", ts=now, attempt=3, error="trainer died 3 times"
        )
        await bus.publish(subjects.job_events("j7"), failed)
        await bus.publish(subjects.job_events("j8"), dead)
        outbox = settings.service_dir("notifier") / "outbox"
        files = await eventually(lambda: len(list(outbox.glob("*.eml"))) == 2 and list(outbox.glob("*.eml")))
        texts = sorted(f.read_text() for f in files)
        assert any("job j7 (acme-chair-002) failed" in t and "COLMAP found no poses" in t for t in texts)
        assert any("[foto3d CRITICAL] job j8 (acme-chair-003) is dead after 3 attempt(s)" in t for t in texts)
        await sign_in_browser(page, settings, rt.http_url)
        await page.goto(rt.http_url + "/alerts")
        await page.wait_for_selector("#outbox tbody tr[data-channel=file]")
        assert await page.locator("#outbox tbody tr").count() == 2
        assert "is dead" in await page.locator("#open-alerts").inner_text()
        assert "local outbox" in await page.inner_text("main")
        await page.screenshot(path=str(tmp_path / "alerts.png"))
        api = json.loads(await (await page.request.get(rt.http_url + "/api/alerts")).text())
        assert api["health"]["state"] == "ok" and len(api["open"]) == 2
