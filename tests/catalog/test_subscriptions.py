"""Subscriptions that end themselves, through the real services: the CRM's API on a server with
authorization on, the end seen at the real token gateway, the staff mails through the notifier
into a real SMTP server, and a catalog that dies in the middle of an end."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import nats
import nkeys
import pytest

from foto3d.libs.bus.connection import Bus, connect
from foto3d.libs.nats_server import NatsServer
from foto3d.proto import subjects
from foto3d.proto.api import ServiceError
from foto3d.proto.gateway import CredentialKind
from foto3d.proto.objects import (
    CUSTOMER_ADD,
    STATUS,
    TIMELINE,
    CustomerAdd,
    LiveStatus,
    ObjectRef,
    ObjectStatusChanged,
    TimelineEntry,
)
from foto3d.proto.subscriptions import (
    SUBSCRIPTION_LIST,
    SUBSCRIPTION_SET,
    SUBSCRIPTION_SHOW,
    Outcome,
    SubscriptionQuery,
    SubscriptionRef,
    SubscriptionSet,
    SubscriptionState,
)
from foto3d.services.catalog import topology
from foto3d.services.catalog.actions import Catalog
from foto3d.services.catalog.service import CatalogService
from testkit.identities import creds_for
from testkit.running import running_services
from testkit.servers import SmtpServer
from testkit.waiting import eventually
from tests.notifier.helpers import notifier_settings
from tests.token_gateway.helpers import Gateway, get

DAY = 86_400.0
STAFF = "sales-ops@example.com"


def catalog_table(notice_s: float) -> dict[str, Any]:
    return {"create_admin": False, "subscriptions": {"notice_days": notice_s / DAY, "mail_to": [STAFF]}}


def plan(revision: int, end: float, sub_id: str = "crm-7", **kw: Any) -> SubscriptionSet:
    return SubscriptionSet(
        subscription_id=sub_id, customer="acme", start=end - 365 * DAY, end=end, revision=revision, **kw
    )


async def status_events(bus: Bus, object_id: str) -> list[TimelineEntry]:
    return [e for e in await bus.call(TIMELINE, ObjectRef(object_id=object_id)) if e.kind == "status"]


def mails(smtp: SmtpServer, word: str) -> list[str]:
    return [s for s in smtp.inbox.subjects() if word in s]


async def test_the_crm_api_is_authenticated_and_replay_safe(
    tmp_path: Path, nats_server: NatsServer, bus: Bus, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = notifier_settings(tmp_path, nats_server.client_url, monkeypatch, smtp.url)
    settings.raw["catalog"] = catalog_table(3600.0)
    async with running_services(settings, ["catalog"], http=False):
        await bus.call(CUSTOMER_ADD, CustomerAdd(slug="acme"))
        crm = await connect(nats_server.client_url, "crm-test", creds=creds_for("crm"))
        try:
            end = time.time() + 30 * DAY
            first = await crm.call(SUBSCRIPTION_SET, plan(10, end, actor="jane@crm"))
            assert first.outcome == Outcome.CREATED and first.subscription.state == SubscriptionState.ACTIVE
            # a replay (the CRM retried, or someone re-sent a captured request): nothing changes
            again = await crm.call(SUBSCRIPTION_SET, plan(10, end, actor="jane@crm"))
            assert again.outcome == Outcome.UNCHANGED and again.subscription == first.subscription
            # requests that overtook each other: revision 12 first, then the late 11
            assert (await crm.call(SUBSCRIPTION_SET, plan(12, end + DAY))).outcome == Outcome.UPDATED
            late = await crm.call(SUBSCRIPTION_SET, plan(11, end + 5 * DAY))
            assert late.outcome == Outcome.STALE and late.subscription.end == end + DAY
            with pytest.raises(ServiceError) as err:
                await crm.call(SUBSCRIPTION_SET, plan(12, end + 9 * DAY))  # same revision, other content
            assert err.value.code == "409"
            with pytest.raises(ServiceError) as err:
                await crm.call(
                    SUBSCRIPTION_SET,
                    SubscriptionSet(subscription_id="x", customer="nobody", start=0, end=1, revision=1),
                )
            assert err.value.code == "404"
            shown = await crm.call(SUBSCRIPTION_SHOW, SubscriptionRef(subscription_id="crm-7"))
            assert (
                shown.revision == 12 and shown.updated_by == "crm"
            )  # the signing key, when the CRM names nobody
            assert [s.subscription_id for s in await crm.call(SUBSCRIPTION_LIST, SubscriptionQuery())] == [
                "crm-7"
            ]
            # the CRM's key reaches the subscriptions API and nothing else: a status change is refused
            # by the server (a permissions violation, not a time-out of the catalog)
            errors: list[str] = []

            async def on_error(exc: Exception) -> None:
                errors.append(str(exc).lower())

            raw = await nats.connect(
                nats_server.client_url,
                nkeys_seed=str(creds_for("crm")),
                error_cb=on_error,
                allow_reconnect=False,
            )
            try:
                await raw.publish(STATUS.subject, b'{"object_id":"acme-x-001","status":"disabled"}')
                await raw.flush()
                await eventually(
                    lambda: any(f'violation for publish to "{STATUS.subject}"' in e for e in errors),
                    "the server to refuse the CRM's status change",
                )
            finally:
                await raw.close()
        finally:
            await crm.close()
        # keys the server does not know (a forged or revoked CRM key) cannot connect at all
        forged = tmp_path / "forged.nk"
        forged.write_bytes(nkeys.encode_seed(b"\x01" * 32, nkeys.PREFIX_BYTE_USER))
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await nats.connect(nats_server.client_url, nkeys_seed=str(forged), allow_reconnect=False)
        # and a rig's key may not set subscriptions
        errors.clear()
        rig = await nats.connect(
            nats_server.client_url, nkeys_seed=str(creds_for("rig")), error_cb=on_error, allow_reconnect=False
        )
        try:
            await rig.publish(SUBSCRIPTION_SET.subject, b"{}")
            await rig.flush()
            await eventually(
                lambda: any(f'violation for publish to "{SUBSCRIPTION_SET.subject}"' in e for e in errors),
                "the server to refuse the rig",
            )
        finally:
            await rig.close()
        assert (await bus.call(SUBSCRIPTION_SHOW, SubscriptionRef(subscription_id="crm-7"))).revision == 12


async def test_the_end_disables_the_models_at_the_gateway_and_mails_staff(
    tmp_path: Path, nats_server: NatsServer, bus: Bus, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = notifier_settings(tmp_path, nats_server.client_url, monkeypatch, smtp.url)
    settings.raw["catalog"] = catalog_table(notice_s=3.0)
    settings.raw["token_gateway"] = {"port": 0}
    async with running_services(settings, ["catalog", "token_gateway", "notifier"]) as rt:
        gw = Gateway(rt=rt, bus=bus, published=settings.data_dir / "published")
        await bus.call(CUSTOMER_ADD, CustomerAdd(slug="acme"))
        await bus.call(CUSTOMER_ADD, CustomerAdd(slug="other"))
        for oid in ("acme-lamp-001", "acme-chair-001", "acme-desk-001", "other-vase-001"):
            await gw.publish_model(oid)
        token = await gw.issue("acme", CredentialKind.SECRET)
        other = await gw.issue("other", CredentialKind.SECRET)

        async def served(session: aiohttp.ClientSession, oid: str, tok: str) -> int:
            return int(
                (await get(session, f"{gw.url}/v1/models/{oid}", headers={"Authorization": f"Bearer {tok}"}))[
                    0
                ]
            )

        async with aiohttp.ClientSession() as s:

            async def codes() -> list[int]:
                return [await served(s, o, token) for o in ("acme-lamp-001", "acme-chair-001")]

            async def both_live() -> bool:
                try:  # recorded live in the catalog, and served by the gateway
                    recorded = [await status_events(bus, o) for o in ("acme-lamp-001", "acme-chair-001")]
                except ServiceError:
                    return False
                return all(recorded) and await codes() == [200, 200]

            await eventually(both_live, "acme's models to be served")
            end = time.time() + 5.0
            # the desk has a contract of its own that runs on: the customer's end must not switch it off
            await bus.call(
                SUBSCRIPTION_SET, plan(1, end + 365 * DAY, sub_id="crm-desk", object_id="acme-desk-001")
            )
            await bus.call(SUBSCRIPTION_SET, plan(1, end))
            await eventually(lambda: mails(smtp, "ends"), "the 'ends soon' mail", timeout=10)
            assert await codes() == [200, 200]

            async def refused() -> bool:
                return await codes() == [404, 404]

            await eventually(refused, "acme's models to be refused", timeout=end - time.time() + 10)
            # within a second of the end (the probe itself polls every 50 ms)
            assert time.time() - end < 1.0 + 0.2, time.time() - end
            assert await served(s, "other-vase-001", other) == 200  # another customer's model stays
            assert await served(s, "acme-desk-001", token) == 200  # still paid for
            await eventually(lambda: mails(smtp, "models disabled"), "the 'ended' mail", timeout=10)

        for oid in ("acme-lamp-001", "acme-chair-001"):
            (ev,) = [e for e in await status_events(bus, oid) if e.actor.startswith("subscription:")]
            assert ev.actor == "subscription:crm-7" and "subscription crm-7 ended" in ev.summary
        shown = await bus.call(SUBSCRIPTION_SHOW, SubscriptionRef(subscription_id="crm-7"))
        assert shown.state == SubscriptionState.ENDED and shown.warned
        assert len(mails(smtp, "ends")) == 1 and len(mails(smtp, "models disabled")) == 1
        assert all(r == [STAFF] for r in smtp.inbox.rcpts)
        body = smtp.inbox.messages[-1].get_content()
        assert "acme-chair-001, acme-lamp-001;" in body and "other-vase-001" not in body
        assert "another subscription covers them: acme-desk-001" in body


async def test_a_restart_in_the_middle_of_an_end_loses_and_doubles_nothing(
    tmp_path: Path,
    nats_server: NatsServer,
    bus: Bus,
    smtp: SmtpServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = notifier_settings(tmp_path, nats_server.client_url, monkeypatch, smtp.url)
    settings.raw["catalog"] = catalog_table(notice_s=0.0)
    settings.raw["token_gateway"] = {"port": 0}
    models = ("acme-a-001", "acme-b-001", "acme-c-001")
    real_set_status = Catalog.set_status
    real_ingest = CatalogService._ingest
    calls: list[str] = []
    dead = False
    read_back = asyncio.Event()
    read_back.set()

    async def gated(self: CatalogService, batch: Any) -> None:
        if dead:  # a dead process records nothing more (the messages stay unacknowledged)
            raise RuntimeError("killed")
        await read_back.wait()
        await real_ingest(self, batch)

    async def dies_on_the_second(self: Catalog, object_id: str, *args: Any, **kw: Any) -> Any:
        calls.append(object_id)
        if len(calls) == 2:
            # the status event reaches the bus, and then the process dies before recording it
            # or going on
            nonlocal dead
            dead = True
            event_id = kw["event_id"]
            ev = ObjectStatusChanged(
                event_id=event_id, object_id=object_id, ts=time.time(), status=LiveStatus.DISABLED,
                actor=args[2], reason=args[1],
            )  # fmt: skip
            await self.bus.publish(subjects.object_events(object_id), ev, msg_id=event_id)
            raise RuntimeError("killed")
        return await real_set_status(self, object_id, *args, **kw)

    monkeypatch.setattr(Catalog, "set_status", dies_on_the_second)
    monkeypatch.setattr(CatalogService, "_ingest", gated)
    async with running_services(settings, ["catalog", "token_gateway", "notifier"]) as rt:
        gw = Gateway(rt=rt, bus=bus, published=settings.data_dir / "published")
        await bus.call(CUSTOMER_ADD, CustomerAdd(slug="acme"))
        for oid in models:
            await gw.publish_model(oid)

        async def all_live() -> bool:
            try:
                return all([await status_events(bus, o) for o in models])
            except ServiceError:  # not recorded yet
                return False

        await eventually(all_live, "the models to be recorded live")
        await bus.call(SUBSCRIPTION_SET, plan(1, time.time() + 1.0, sub_id="crm-9"))
        await eventually(lambda: len(calls) >= 2, "the end to start and the process to die in it")
    # The catalog stopped in the middle: one model disabled, one event on the bus only, one untouched.
    assert len(calls) == 2
    # On the next start the clock runs before the catalog has read its stream back, so it
    # publishes the second model's change again: the step's id makes that one change.
    calls.clear()
    dead = False
    read_back.clear()

    async def counted(self: Catalog, object_id: str, *args: Any, **kw: Any) -> Any:
        calls.append(object_id)
        try:
            return await real_set_status(self, object_id, *args, **kw)
        finally:
            if len(calls) == 2:
                read_back.set()

    monkeypatch.setattr(Catalog, "set_status", counted)
    async with running_services(settings, ["catalog", "token_gateway", "notifier"]):

        async def ended() -> bool:
            view = await bus.call(SUBSCRIPTION_SHOW, SubscriptionRef(subscription_id="crm-9"))
            return view.state == SubscriptionState.ENDED

        await eventually(ended, "the end to be carried out after the restart", timeout=30)
        await eventually(lambda: mails(smtp, "models disabled"), "the 'ended' mail", timeout=10)
        assert calls == ["acme-b-001", "acme-c-001"]
        await eventually(lambda: read_back.is_set(), "the catalog to read its stream")

        async def caught_up() -> bool:
            info = await bus.js.consumer_info(subjects.OBJECT_EVENTS_STREAM, topology.OBJECT_EVENTS.durable)
            return bool(info.num_pending == 0 and info.num_ack_pending == 0)

        await eventually(caught_up, "the catalog to have read every object event", timeout=60)
        for oid in models:
            by_sub = [e for e in await status_events(bus, oid) if e.actor == "subscription:crm-9"]
            assert len(by_sub) == 1, (oid, by_sub)
    # a later start finds nothing left to do: still one mail
    async with running_services(settings, ["catalog", "notifier"]):
        view = await bus.call(SUBSCRIPTION_SHOW, SubscriptionRef(subscription_id="crm-9"))
        assert view.state == SubscriptionState.ENDED
    assert len(mails(smtp, "models disabled")) == 1
