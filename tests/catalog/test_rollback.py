"""Rolling back a publish: an earlier version live again in one action, at the real gateway."""

from __future__ import annotations

import time

import aiohttp
import pytest

from foto3d.libs.bus.connection import Bus
from foto3d.libs.config import Settings
from foto3d.proto.api import ServiceError
from foto3d.proto.gateway import CredentialKind
from foto3d.proto.objects import (
    CUSTOMER_ADD,
    ROLLBACK,
    SHOW,
    TIMELINE,
    CustomerAdd,
    ObjectRef,
    RollbackRequest,
)
from testkit.running import running_services
from testkit.waiting import eventually
from tests.token_gateway.helpers import Gateway, get

OID = "acme-lamp-001"


async def test_an_earlier_version_is_live_again_within_a_second(settings: Settings, bus: Bus) -> None:
    settings.raw["catalog"] = {"create_admin": False}
    settings.raw["token_gateway"] = {"port": 0}
    async with running_services(settings, ["catalog", "token_gateway"]) as rt:
        gw = Gateway(rt=rt, bus=bus, published=settings.data_dir / "published")
        await bus.call(CUSTOMER_ADD, CustomerAdd(slug="acme"))
        v1 = await gw.publish_model(OID, version=1, status=None)
        await gw.publish_model(OID, version=2, status=None)
        token = await gw.issue("acme", CredentialKind.SECRET)
        url = f"{gw.url}/v1/models/{OID}"
        auth = {"Authorization": f"Bearer {token}"}

        async with aiohttp.ClientSession() as s:

            async def served_version() -> int:
                st, body, _ = await get(s, url, headers=auth)
                return int(body["model_version"]) if st == 200 else 0

            async def v2_everywhere() -> bool:
                try:
                    shown = await bus.call(SHOW, ObjectRef(object_id=OID))
                except ServiceError:
                    return False
                return shown.published_version == 2 and await served_version() == 2

            await eventually(v2_everywhere, "v2 live in the catalog and at the gateway")
            with pytest.raises(ServiceError) as err:
                await bus.call(ROLLBACK, RollbackRequest(object_id=OID, version=7))
            assert err.value.code == "404" and "v1, v2" in err.value.description

            start = time.monotonic()
            row = await bus.call(ROLLBACK, RollbackRequest(object_id=OID, version=1, actor="ops"))
            assert row.published_version == 1

            async def v1_served() -> bool:
                return await served_version() == 1

            await eventually(v1_served, "v1 at the gateway", timeout=2.0)
            assert time.monotonic() - start < 1.0
            _, body, _ = await get(s, url, headers=auth)
            link = body["files"][0]["url"]
            assert "/v1/" in link
            st, data, _ = await get(s, link)
            assert st == 200 and data in v1.values()

        timeline = await bus.call(TIMELINE, ObjectRef(object_id=OID))
        (rolled,) = [e for e in timeline if "rolled back" in e.summary]
        assert rolled.actor == "ops" and rolled.summary == "rolled back to v1 (v2 was live)"
        # the same version again is a no-op
        assert (await bus.call(ROLLBACK, RollbackRequest(object_id=OID, version=1))).published_version == 1
        assert (
            len([e for e in await bus.call(TIMELINE, ObjectRef(object_id=OID)) if "rolled" in e.summary]) == 1
        )
