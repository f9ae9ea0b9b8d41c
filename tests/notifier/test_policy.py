"""Repeat interval, rate limit, routing rules, and restarted services."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from foto3d.libs.bus.connection import Bus
from foto3d.libs.config import ConfigError, Settings
from foto3d.libs.heartbeat import HeartbeatSender
from foto3d.libs.nats_server import NatsServer
from foto3d.proto.alerts import Severity
from foto3d.proto.logs import Level
from foto3d.services.notifier.config import NotifierConfig
from foto3d.services.notifier.model import AlertInfo, normalize_message
from foto3d.services.notifier.routing import route
from foto3d.services.notifier.service import Notifier
from tests.conftest import running_services
from tests.notifier.conftest import SmtpServer, wait_for
from tests.notifier.helpers import batch, notifier_settings, publish_batch


async def test_repeat_interval_sums_later_occurrences_into_one_follow_up(
    tmp_path: Path, nats_server: NatsServer, bus: Bus, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = notifier_settings(tmp_path, nats_server.client_url, monkeypatch, smtp.url)
    settings.raw["notifier"]["repeat_interval"] = 1.0
    async with running_services(settings, ["notifier"], http=False):
        err = [(int(Level.ERROR), "checksum mismatch in part 3")]
        await publish_batch(bus, batch(err))
        await wait_for(lambda: smtp.inbox.messages, what="first mail")
        for _ in range(3):
            await publish_batch(bus, batch(err))
        await asyncio.sleep(0.5)
        assert len(smtp.inbox.messages) == 1  # still inside the repeat interval
        await wait_for(lambda: len(smtp.inbox.messages) == 2, timeout=3, what="the follow-up")
        assert smtp.inbox.subjects()[1].startswith("[foto3d ERROR] (×4) ERROR in trainer gpu-1: checksum")
        assert smtp.inbox.subjects()[1].endswith("still happening")
        await asyncio.sleep(1.3)  # nothing new: no third mail
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
        for word in ("alpha", "beta", "gamma"):
            await publish_batch(bus, batch([(int(Level.ERROR), f"{word} failed")], source_id=word))
        await wait_for(lambda: len(smtp.inbox.messages) == 2, what="two mails")

        async def held() -> list[str]:
            return [r.last_error or "" for r in await store.pending() if r.channel == "smtp"]

        want = ["rate limit: waiting for the next slot"]
        for _ in range(100):  # the two sent ones are marked sent just after SMTP accepted them
            if await held() == want:
                break
            await asyncio.sleep(0.02)
        assert await held() == want
        await asyncio.sleep(0.3)
        assert len(smtp.inbox.messages) == 2


async def test_restarted_service_closes_its_interruption_as_replaced(
    tmp_path: Path, nats_server: NatsServer, bus: Bus, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = notifier_settings(tmp_path, nats_server.client_url, monkeypatch, smtp.url)
    async with running_services(settings, ["notifier"], http=False):
        old = HeartbeatSender(bus, "service", "queue.host-aaa", host="box", interval=0.2)
        old.start()
        await asyncio.sleep(0.3)
        await old.stop(clean=False)  # killed
        await wait_for(lambda: smtp.inbox.messages, timeout=5, what="interruption mail")
        new = HeartbeatSender(bus, "service", "queue.host-bbb", host="box", interval=0.2)
        new.start()
        await wait_for(lambda: len(smtp.inbox.messages) == 2, timeout=5, what="recovery mail")
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
    cfg = NotifierConfig.load(Settings.load(data_dir=tmp_path))

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
        NotifierConfig.load(Settings.load(data_dir=tmp_path))
    (tmp_path / "foto3d.toml").write_text("[notifier]\ngroup_wiat = 1\n")
    with pytest.raises(ConfigError, match="group_wiat"):
        NotifierConfig.load(Settings.load(data_dir=tmp_path))
