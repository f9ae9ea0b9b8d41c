"""Repeat interval, rate limit, routing rules, and restarted services."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from foto3d.libs.bus.connection import Bus
from foto3d.libs.config import ConfigError, Settings
from foto3d.libs.heartbeat import HeartbeatSender
from foto3d.libs.nats_server import NatsServer
from foto3d.proto.alerts import Severity
from foto3d.proto.logs import Level
from foto3d.services.notifier.delivery import HOUR
from foto3d.services.notifier.model import AlertInfo, normalize_message
from foto3d.services.notifier.routing import route
from foto3d.services.notifier.service import Notifier
from foto3d.services.notifier.settings import SETTINGS, NotifierConfig
from foto3d.services.notifier.store import AlertRow, OutboxRow
from testkit.running import running_services
from testkit.servers import SmtpServer
from testkit.waiting import eventually
from tests.notifier.helpers import batch, nothing_left_to_send, notifier_of, notifier_settings, publish_batch


async def test_repeat_interval_sums_later_occurrences_into_one_follow_up(
    tmp_path: Path, nats_server: NatsServer, bus: Bus, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = notifier_settings(tmp_path, nats_server.client_url, monkeypatch, smtp.url)
    settings.raw["notifier"]["repeat_interval"] = 1.0
    async with running_services(settings, ["notifier"], http=False) as rt:
        svc = notifier_of(rt)
        store = svc.store
        assert store is not None
        err = [(int(Level.ERROR), "checksum mismatch in part 3")]
        await publish_batch(bus, batch(err))
        await eventually(lambda: smtp.inbox.messages, what="first mail")
        for _ in range(3):
            await publish_batch(bus, batch(err))

        async def all_counted() -> AlertRow | None:
            alerts = await store.open_alerts()
            return alerts[0] if len(alerts) == 1 and alerts[0].count == 4 else None

        # The three later batches are counted into the mailed alert, whose next mail is then
        # held until one repeat interval after the first, not sent at once.
        alert = await eventually(all_counted, what="the later occurrences counted")
        assert alert.mailed_count == 1 and alert.last_mail_at is not None and alert.next_mail_at is not None
        assert alert.next_mail_at >= alert.last_mail_at + 1.0
        await eventually(lambda: len(smtp.inbox.messages) == 2, timeout=3, what="the follow-up")
        assert smtp.inbox.subjects()[1].startswith("[foto3d ERROR] (×4) ERROR in trainer gpu-1: checksum")
        assert smtp.inbox.subjects()[1].endswith("still happening")
        # nothing new: no third mail
        await eventually(lambda: nothing_left_to_send(svc, bus), what="nothing left to send")
        assert len(smtp.inbox.messages) == 2


async def test_rate_limit_holds_mail_back_without_dropping_it(
    tmp_path: Path, nats_server: NatsServer, bus: Bus, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = notifier_settings(tmp_path, nats_server.client_url, monkeypatch, smtp.url)
    settings.raw["notifier"]["rate_limit_per_hour"] = 2
    async with running_services(settings, ["notifier"], http=False) as rt:
        svc = rt.services[0]
        assert isinstance(svc, Notifier) and svc.store is not None
        store = svc.store
        words = ("alpha", "beta", "gamma")
        for word in words:
            # three jobs, three stories (errors of one job would share one mail)
            await publish_batch(
                bus, batch([(int(Level.ERROR), f"{word} failed")], source_id=word, job_id=f"job-{word}")
            )
        await eventually(lambda: len(smtp.inbox.messages) == 2, what="two mails")

        async def held() -> list[OutboxRow]:
            return [r for r in await store.pending() if r.channel == "smtp"]

        # The two sent rows are marked sent just after SMTP accepted them, and the third is
        # postponed in the sender's next pass: the store has no event for either, so poll.
        async def third_held_back() -> bool:
            return [r.last_error for r in await held()] == ["rate limit: waiting for the next slot"]

        await eventually(
            third_held_back, what="the third mail held back by the rate limit", timeout=10, interval=0.02
        )
        [row] = await held()
        # Held for the hour, not dropped: its next try is when the oldest slot frees up.
        assert row.next_attempt_at > time.time() + HOUR - 60
        assert row.state == "pending" and row.attempts == 0
        # Two different alerts went out, the third is the one held back (nothing sent twice).
        sent = {word for word in words for subject in smtp.inbox.subjects() if f"{word} failed" in subject}
        assert len(sent) == 2 and len(smtp.inbox.messages) == 2
        assert [w for w in words if w not in sent] == [w for w in words if f"{w} failed" in row.subject]


async def test_a_delivery_ending_while_the_outbox_is_read_is_not_sent_again(
    tmp_path: Path, nats_server: NatsServer, bus: Bus, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The race behind duplicate mails: a pass of the sender reads the outbox while a mail
    # is in flight, and that mail is accepted and marked sent before the pass looks at
    # its (now stale) row. The SMTP server holds its "250" until the pass has read.
    settings = notifier_settings(tmp_path, nats_server.client_url, monkeypatch, smtp.url)
    accepted = smtp.inbox.handle_DATA
    release = threading.Event()

    async def handle_data_after_release(server: Any, session: Any, envelope: Any) -> str:
        reply = await accepted(server, session, envelope)
        await asyncio.to_thread(release.wait, 10.0)
        return reply

    monkeypatch.setattr(smtp.inbox, "handle_DATA", handle_data_after_release)
    async with running_services(settings, ["notifier"], http=False) as rt:
        svc = rt.services[0]
        assert isinstance(svc, Notifier) and svc.store is not None and svc.sender is not None
        store, sender = svc.store, svc.sender
        real_pending = store.pending
        raced = asyncio.Event()

        async def pending_while_the_mail_completes(limit: int = 500) -> list[OutboxRow]:
            rows = await real_pending(limit)
            flying = {r.id for r in rows if r.channel == "smtp"} & sender._inflight
            if flying and not raced.is_set():
                release.set()
                await eventually(lambda: not flying & sender._inflight, what="the mail to be marked sent")
                raced.set()
            return rows

        monkeypatch.setattr(store, "pending", pending_while_the_mail_completes)
        await publish_batch(bus, batch([(int(Level.ERROR), "lens cap on")]))
        await eventually(lambda: smtp.inbox.messages, what="the mail at the server")
        sender.wake()  # a pass while the mail is in flight
        await raced.wait()
        # The pass that read the stale row has started whatever it took as due by now.
        await eventually(lambda: not sender._inflight, what="the sender to be idle")
        assert smtp.inbox.subjects() == ["[foto3d ERROR] ERROR in trainer gpu-1: lens cap on"]
        assert not [r for r in await real_pending() if r.channel == "smtp"]


async def test_restarted_service_closes_its_interruption_as_replaced(
    tmp_path: Path, nats_server: NatsServer, bus: Bus, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = notifier_settings(tmp_path, nats_server.client_url, monkeypatch, smtp.url)
    async with running_services(settings, ["notifier"], http=False) as rt:
        watch = notifier_of(rt).watch
        assert watch is not None
        old = HeartbeatSender(bus, "service", "queue.host-aaa", host="box", interval=0.2)
        old.start()
        await eventually(lambda: ("service", "queue.host-aaa") in watch.participants, what="first beat")
        await old.stop(clean=False)  # killed
        await eventually(lambda: smtp.inbox.messages, timeout=5, what="interruption mail")
        new = HeartbeatSender(bus, "service", "queue.host-bbb", host="box", interval=0.2)
        new.start()
        await eventually(lambda: len(smtp.inbox.messages) == 2, timeout=5, what="recovery mail")
        await new.stop()
        assert smtp.inbox.subjects() == [
            "[foto3d ERROR] service queue.host-aaa is silent",
            "[foto3d RECOVERED] service queue.host-aaa is silent",
        ]
        body = smtp.inbox.messages[1].get_body(("plain",))
        assert body is not None and "was restarted (replaced by queue.host-bbb)" in body.get_content()


def test_routing_rules_by_customer_severity_and_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FOTO3D_ALERT_TO", raising=False)
    monkeypatch.delenv("FOTO3D_SMTP_URL", raising=False)
    monkeypatch.delenv("FOTO3D_ALERT_WEBHOOK", raising=False)
    (tmp_path / "foto3d.toml").write_text(
        """
[notifier]
to = ["ops@example.com"]
min_severity = "warning"

[[notifier.routes]]
customers = ["acme"]
to = ["acme-team@example.com"]

[[notifier.routes]]
source_kinds = ["trainer"]
min_severity = "critical"
to = ["gpu-oncall@example.com"]
webhooks = ["https://hooks.example.com/gpu"]
stop = true

[[notifier.routes]]
to = ["never@example.com"]
"""
    )
    cfg = NotifierConfig.resolve(SETTINGS.load(Settings.load(data_dir=tmp_path)))

    def info(sev: Severity, kind: str, obj: str | None) -> AlertInfo:
        return AlertInfo(
            kind="log_error",
            severity=sev,
            title="t",
            what="w",
            ts=0.0,
            source_kind=kind,
            object_id=obj,
        )

    r = route(cfg, info("critical", "trainer", "acme-lamp-001"))
    assert r.emails == ["acme-team@example.com", "gpu-oncall@example.com"]
    assert r.webhooks == ["https://hooks.example.com/gpu"]
    assert route(cfg, info("error", "rig", "bolt-chair-002")).emails == ["never@example.com"]
    assert route(cfg, info("info", "rig", None)).emails == []  # below min_severity
    assert normalize_message("took 12.5 s on 0xdeadbeef") == normalize_message("took 9 s on 0xfeed")

    (tmp_path / "foto3d.toml").write_text('[notifier]\nto = ["not-an-address"]\n')
    with pytest.raises(ConfigError, match="not an email address"):
        NotifierConfig.resolve(SETTINGS.load(Settings.load(data_dir=tmp_path)))
    (tmp_path / "foto3d.toml").write_text("[notifier]\ngroup_wiat = 1\n")
    with pytest.raises(ConfigError, match="group_wiat"):
        NotifierConfig.resolve(SETTINGS.load(Settings.load(data_dir=tmp_path)))
