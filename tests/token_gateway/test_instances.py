"""Several gateway instances behind one balancer: shared credentials, statuses and usage totals."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

import aiohttp

from foto3d.libs.bus.connection import Bus
from foto3d.libs.config import Settings
from foto3d.proto.gateway import USAGE, UsageQuery
from foto3d.proto.objects import LiveStatus
from foto3d.services.token_gateway.service import TokenGateway
from testkit.running import running_services
from testkit.waiting import eventually
from tests.token_gateway.helpers import Gateway, get
from tests.token_gateway.test_models import OID, bearer


async def test_three_instances_share_credentials_statuses_and_usage(
    settings: Settings, bus: Bus, tmp_path: Path
) -> None:
    assert settings.nats_urls
    published = tmp_path / "published"
    secret = "s" * 40
    gws: list[Gateway] = []
    async with AsyncExitStack() as stack:
        for i in range(3):
            own = Settings.load(data_dir=tmp_path / f"instance{i}", nats=settings.nats_urls[0], http_port=0)
            own.raw["token_gateway"] = {
                "port": 0,
                "local_root": str(published),
                "link_secret": secret,
                "usage_flush_s": 0.2,
            }
            rt = await stack.enter_async_context(running_services(own, ["token_gateway"], http=False))
            gws.append(Gateway(rt=rt, bus=bus, published=published))
        await gws[0].publish_model(OID)
        token = await gws[0].issue("acme")  # answered by whichever instance the queue group picks
        async with aiohttp.ClientSession() as s:

            async def everywhere(status: int) -> bool:
                got = [(await get(s, f"{g.url}/v1/models/{OID}", headers=bearer(token)))[0] for g in gws]
                return got == [status] * 3

            await eventually(lambda: everywhere(200), "every instance to accept the token", timeout=2)
            # a link made by one instance works on another (same link secret)
            _, body, _ = await get(s, f"{gws[0].url}/v1/models/{OID}", headers=bearer(token))
            link = body["files"][0]["url"].replace(gws[0].url, gws[2].url)
            assert (await get(s, link))[0] == 200
            await gws[1].status(OID, LiveStatus.DISABLED)
            await eventually(
                lambda: everywhere(404), "every instance to refuse the disabled model", timeout=1
            )

        async def totals_agree() -> bool:
            rows = []
            for g in gws:
                svc = g.svc
                assert isinstance(svc, TokenGateway) and svc.parts is not None
                rows.append(await svc.parts.store.usage(UsageQuery(customer="acme")))
            # at least 3 + 1 + 1 + 3 requests (more if a wait above polled twice), on three instances,
            # the last 3 refused: each instance flushes its counts every usage_flush_s, so the
            # totals can agree before the last flush of one of them has arrived
            first = rows[0][0] if rows[0] else None
            enough = first is not None and first.requests >= 8 and first.denied >= 3
            return enough and all(r == rows[0] for r in rows)

        # each instance's totals count the requests all of them answered
        await eventually(totals_agree, "usage totals to agree on every instance", timeout=10)
        reply = await bus.call(USAGE, UsageQuery(customer="acme"))
        assert reply.rows[0].requests >= 8 and reply.rows[0].denied >= 3


async def test_a_ban_on_one_instance_holds_on_every_instance(
    settings: Settings, bus: Bus, tmp_path: Path
) -> None:
    """Brute force against one instance bans the address on all of them within a second (a client
    cannot move on to the next instance behind the balancer), and a later instance learns it too."""
    assert settings.nats_urls
    nats = settings.nats_urls[0]
    published = tmp_path / "published"

    def instance(i: int) -> Settings:
        own = Settings.load(data_dir=tmp_path / f"instance{i}", nats=nats, http_port=0)
        own.raw["token_gateway"] = {"port": 0, "local_root": str(published), "ban_after_failures": 3}
        return own

    async with AsyncExitStack() as stack:
        gws = [
            Gateway(
                rt=await stack.enter_async_context(
                    running_services(instance(i), ["token_gateway"], http=False)
                ),
                bus=bus,
                published=published,
            )
            for i in range(2)
        ]
        await gws[0].publish_model(OID)
        token = await gws[0].issue("acme")
        async with aiohttp.ClientSession() as s:
            url = f"/v1/models/{OID}"
            await eventually(
                lambda: _status(s, f"{gws[1].url}{url}", token, 200), "the token on instance 1", timeout=2
            )
            for i in range(3):
                st, _, _ = await get(s, f"{gws[0].url}{url}", headers=bearer(f"sk_{i:016x}_{'A' * 43}"))
                assert st == 401
            assert (await get(s, f"{gws[0].url}{url}", headers=bearer(token)))[1]["error"] == "banned"
            await eventually(
                lambda: _status(s, f"{gws[1].url}{url}", token, 403), "the ban on instance 1", timeout=1
            )
            late = Gateway(
                rt=await stack.enter_async_context(
                    running_services(instance(2), ["token_gateway"], http=False)
                ),
                bus=bus,
                published=published,
            )
            st, body, headers = await get(s, f"{late.url}{url}", headers=bearer(token))
            assert st == 403 and body["error"] == "banned" and int(headers["Retry-After"]) > 0


async def _status(s: aiohttp.ClientSession, url: str, token: str, want: int) -> bool:
    return (await get(s, url, headers=bearer(token)))[0] == want
