"""A NATS outage: customers keep being served from what the gateway knows; nothing logged is lost."""

from __future__ import annotations

import asyncio

import aiohttp

from foto3d.libs.bus.connection import Bus
from foto3d.libs.config import Settings
from foto3d.libs.nats_server import NatsServer
from foto3d.proto.gateway import ACCESS_LOG_SOURCE_KIND
from foto3d.proto.logs import LOG_QUERY, LogQuery
from testkit.running import running_services
from testkit.waiting import eventually
from tests.token_gateway.helpers import Gateway, get
from tests.token_gateway.test_models import OID, bearer


async def test_serves_through_a_nats_outage_and_ships_the_log_after(
    settings: Settings, bus: Bus, nats_server: NatsServer
) -> None:
    settings.raw["token_gateway"] = {"port": 0}
    async with running_services(settings, ["log_collector", "token_gateway"], http=False) as rt:
        gw = Gateway(rt=rt, bus=bus, published=settings.data_dir / "published")
        await gw.publish_model(OID)
        token = await gw.issue("acme")
        cid = token.split("_")[1]
        url = f"{gw.url}/v1/models/{OID}"
        async with aiohttp.ClientSession() as s:
            assert (await get(s, url, headers=bearer(token)))[0] == 200
            await asyncio.to_thread(nats_server.stop)
            during = [(await get(s, url, headers=bearer(token)))[0] for _ in range(5)]
            assert during == [200] * 5  # credentials and statuses are held locally
            _, body, _ = await get(s, url, headers=bearer(token))
            assert (await get(s, body["files"][0]["url"]))[0] == 200
            await asyncio.to_thread(nats_server.restart)

        async def all_logged() -> bool:
            try:
                reply = await gw.bus.call(
                    LOG_QUERY,
                    LogQuery(source_kind=ACCESS_LOG_SOURCE_KIND, text=f"cred={cid}", limit=100),
                    timeout=2,
                )
            except Exception:  # the collector is still reconnecting
                return False
            return len(reply.records) >= 8

        await eventually(all_logged, "the outage's access log to reach the log server", timeout=30)
