"""Webhooks to customers through the real catalog, a real nats-server and a real HTTP receiver
that is down (nothing listens), then answers 500, then is too slow, then accepts: every event
arrives, signed, and only repeats of the same delivery id (at least once) are ever seen twice."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web

from foto3d.libs.bus.connection import Bus
from foto3d.libs.config import Settings
from foto3d.proto import subjects
from foto3d.proto.objects import (
    CUSTOMER_ADD,
    CustomerAdd,
    LiveStatus,
    ObjectPublished,
    ObjectRegistered,
    ObjectStatusChanged,
)
from foto3d.proto.subscriptions import SUBSCRIPTION_SET, SubscriptionSet
from foto3d.proto.webhooks import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    WEBHOOK_ADD,
    WEBHOOK_DELIVERIES,
    CustomerRef,
    EndpointAdd,
    WebhookBody,
    signature,
    verify,
)
from testkit.running import running_services
from testkit.servers import free_port
from testkit.waiting import eventually

OID = "acme-lamp-001"


@dataclass
class Receiver:
    """A customer's endpoint: records every request, answers as ``mode`` says."""

    port: int = field(default_factory=free_port)
    mode: str = "ok"  # ok | error | slow
    seen: list[tuple[str, bytes, str, str]] = field(default_factory=list)  # id, body, signature, mode
    runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        mode = self.mode
        self.seen.append((request.headers[DELIVERY_HEADER], body, request.headers[SIGNATURE_HEADER], mode))
        if mode == "error":
            return web.Response(status=500)
        if mode == "slow":
            await asyncio.sleep(3.0)  # past the sender's time-out: it must try again
        return web.Response(status=204)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hooks", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    def count(self, mode: str) -> int:
        return sum(1 for s in self.seen if s[3] == mode)


def configure(settings: Settings) -> None:
    settings.raw["catalog"] = {
        "create_admin": False,
        "webhooks": {"timeout_s": 1.0, "retry_initial_s": 0.2, "retry_max_s": 1.0},
        "subscriptions": {"notice_days": 3600.0 / 86400},
    }


async def publish(bus: Bus, ev: Any) -> None:
    await bus.publish(subjects.object_events(ev.object_id), ev, msg_id=ev.event_id)


async def test_nothing_is_lost_while_the_endpoint_is_down_failing_or_slow(
    settings: Settings, bus: Bus, tmp_path: Path
) -> None:
    configure(settings)
    rx = Receiver()
    try:
        async with running_services(settings, ["catalog"], http=False):
            await bus.call(CUSTOMER_ADD, CustomerAdd(slug="acme"))
            await bus.call(CUSTOMER_ADD, CustomerAdd(slug="other"))
            ep = await bus.call(WEBHOOK_ADD, EndpointAdd(customer="acme", url=rx.url))
            assert ep.secret.startswith("whsec_")
            now = time.time()
            await publish(bus, ObjectRegistered(
                event_id="r1", object_id=OID, ts=now, customer="acme", display_name="Lamp", slug="lamp", serial=1,
            ))  # fmt: skip
            await publish(bus, ObjectPublished(
                event_id="p1", object_id=OID, ts=now + 1, version=1, job_id="j1", live_url="https://x/v.json",
                files=[],
            ))  # fmt: skip
            await publish(bus, ObjectStatusChanged(
                event_id="s1", object_id=OID, ts=now + 2, status=LiveStatus.DISABLED,
                previous=LiveStatus.PRODUCTION, reason="asked",
            ))  # fmt: skip
            await publish(bus, ObjectStatusChanged(
                event_id="s2", object_id=OID, ts=now + 3, status=LiveStatus.DEMO, previous=LiveStatus.DISABLED,
            ))  # fmt: skip
            # another customer's model: never sent to acme's endpoint
            await publish(bus, ObjectStatusChanged(
                event_id="s3", object_id="other-vase-001", ts=now, status=LiveStatus.DISABLED,
            ))  # fmt: skip
            await bus.call(
                SUBSCRIPTION_SET,
                SubscriptionSet(subscription_id="c1", customer="acme", start=now, end=now + 600, revision=1),
            )

            async def tried_while_down() -> bool:
                log = await bus.call(WEBHOOK_DELIVERIES, CustomerRef(customer="acme"))
                return len(log) == 4 and all(d.attempts >= 2 and d.last_status == 0 for d in log)

            await eventually(tried_while_down, "four deliveries tried against a closed port", timeout=30)
        # the catalog restarts while everything is still waiting
        async with running_services(settings, ["catalog"], http=False):
            rx.mode = "error"
            await rx.start()
            await eventually(lambda: rx.count("error") >= 6, "500s answered", timeout=30)
            rx.mode = "slow"
            await eventually(lambda: rx.count("slow") >= 1, "a slow answer", timeout=30)
            rx.mode = "ok"

            async def all_delivered() -> list[Any] | None:
                log = await bus.call(WEBHOOK_DELIVERIES, CustomerRef(customer="acme"))
                return log if len(log) == 4 and all(d.state == "delivered" for d in log) else None

            log = await eventually(all_delivered, "every delivery accepted", timeout=120)
    finally:
        await rx.stop()

    accepted = {s[0] for s in rx.seen if s[3] == "ok"}
    assert accepted == {d.delivery_id for d in log}
    bodies: dict[str, bytes] = {}
    for delivery_id, body, sig, _ in rx.seen:
        # the same delivery id always carries the same body (receivers dedupe on it)
        assert bodies.setdefault(delivery_id, body) == body
        assert verify(ep.secret, sig, body, time.time(), window=600)
        assert not verify("whsec_wrong", sig, body, time.time(), window=600)
    types = sorted(msgspec.json.decode(b, type=WebhookBody).type.value for b in bodies.values())
    assert types == ["model.disabled", "model.published", "model.updated", "subscription.ending"]
    assert all(
        msgspec.json.decode(b, type=WebhookBody).data.get("object_id") in (OID, None) for b in bodies.values()
    )
    assert all(d.attempts >= 3 for d in log)


def test_signatures_check_the_body_the_secret_and_the_time() -> None:
    body = b'{"id":"wd_1"}'
    sig = signature("whsec_a", 1_800_000_000, body)
    assert verify("whsec_a", sig, body, 1_800_000_100)
    assert not verify("whsec_a", sig, body + b" ", 1_800_000_100)  # tampered body
    assert not verify("whsec_b", sig, body, 1_800_000_100)  # another secret
    assert not verify("whsec_a", sig, body, 1_800_000_000 + 301)  # replayed after the window
    assert not verify("whsec_a", "t=x,v1=00", body, 1_800_000_000)
