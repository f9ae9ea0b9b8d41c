"""A write a standby forwarded to a leader that dies before answering fails fast.

The leader here is a lease holder that takes the forwarded request and never answers (as a
leader killed mid-request). When its lease ends, the standby takes it, and the waiting
write is answered 503 "try again" then, not after the whole forward timeout.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import msgspec
import pytest
from nats.aio.msg import Msg

from foto3d.libs.bus.connection import Bus
from foto3d.libs.lease import KEY, LeaseHolder
from foto3d.libs.nats_server import NatsServer
from foto3d.proto.api import ServiceError
from foto3d.proto.objects import CUSTOMER_ADD, CustomerAdd, to_catalog_leader
from foto3d.proto.permissions import CATALOG_LEASE_BUCKET
from testkit.running import running_services
from testkit.waiting import eventually
from tests.catalog.helpers import catalog_of, instance_settings


async def test_a_write_forwarded_to_a_leader_that_died_is_refused_when_the_lease_moves(
    tmp_path: Path, nats_server: NatsServer, bus: Bus
) -> None:
    kv = await bus.js.key_value(CATALOG_LEASE_BUCKET)
    ghost = msgspec.json.encode(LeaseHolder(instance="ghost", host="nowhere", since=time.time()))
    revision = await kv.create(KEY, ghost)
    dead = asyncio.Event()

    async def renew() -> None:
        nonlocal revision
        while not dead.is_set():
            revision = await kv.update(KEY, ghost, last=revision)
            try:
                await asyncio.wait_for(dead.wait(), 1.0)
            except TimeoutError:
                pass

    taken: list[Msg] = []

    async def take(msg: Msg) -> None:
        taken.append(msg)  # and never answer: the leader dies with the request

    sub = await bus.nc.subscribe(to_catalog_leader(CUSTOMER_ADD), cb=take)
    renewing = asyncio.create_task(renew())
    settings = instance_settings(tmp_path, nats_server.client_url, "site-b")
    try:
        async with running_services(settings, ["catalog"], http=False) as rt:
            standby = catalog_of(rt)

            def knows_the_ghost() -> bool:
                return bool(standby.health().extra.get("leader") == "ghost")

            await eventually(knows_the_ghost, what="the standby to see the ghost's lease", timeout=60)
            forward_timeout_s = standby._route.forward_timeout_s
            sent = time.monotonic()
            write = asyncio.create_task(bus.call(CUSTOMER_ADD, CustomerAdd(slug="acme"), timeout=60))
            await eventually(lambda: taken, what="the leader to take the forwarded write", timeout=30)
            dead.set()
            await renewing
            await kv.delete(KEY, last=revision)  # its lease ends (as its TTL would end it)

            with pytest.raises(ServiceError) as refused:
                await write
            waited = time.monotonic() - sent
            assert refused.value.code == "503", refused.value
            assert refused.value.description.startswith("no catalog leader reachable")
            # Ended by the lease moving (here: to the standby), not by the forward timeout.
            assert waited < forward_timeout_s, waited
            await eventually(lambda: standby.is_leader, what="the standby to lead", timeout=30)
            print(f"refused {waited:.1f} s after it was sent (forward timeout {forward_timeout_s:.0f} s)")
    finally:
        dead.set()
        await renewing
        await sub.unsubscribe()
