"""A subscription clock step whose publish failed reaches the standby without a takeover.

The "ends soon" step is published before the leader records it: while ``CATALOG_BOOKS``
refuses the row (its message size limit is lowered, a real refusal by the server), the
leader's own row stays as it was and its clock carries the step out again; once the stream
accepts it, the standby's row converges, with the same leader.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import time
from pathlib import Path
from typing import Any

from foto3d.libs.bus.connection import Bus
from foto3d.libs.bus.topology import STREAMS
from foto3d.libs.config import Settings
from foto3d.libs.nats_server import NatsServer
from foto3d.proto import subjects
from foto3d.proto.objects import CUSTOMER_ADD, CustomerAdd
from foto3d.proto.subscriptions import SUBSCRIPTION_SET, SubscriptionSet
from testkit.running import running_services
from testkit.waiting import eventually
from tests.catalog.helpers import catalog_of, instance_settings

NOTICE_S = 3600.0
# The warning falls due this long after the request: time to make the stream refuse first.
DUE_IN_S = 30.0


def warned_end(settings: Settings, subscription_id: str) -> Any:
    db = settings.data_dir / "catalog" / "subscriptions.db"
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        row = conn.execute(
            "SELECT warned_end FROM subscriptions WHERE subscription_id=?", (subscription_id,)
        ).fetchone()
    return row[0] if row else "no row"


async def books_stream_limit(bus: Bus, max_msg_size: int) -> None:
    (spec,) = [s for s in STREAMS if s.name == subjects.CATALOG_BOOKS_STREAM]
    await bus.js.update_stream(dataclasses.replace(spec, max_msg_size=max_msg_size).config())


async def test_a_clock_step_the_stream_refused_reaches_the_standby_without_a_takeover(
    tmp_path: Path, nats_server: NatsServer, bus: Bus
) -> None:
    notice = {"subscriptions": {"notice_days": NOTICE_S / 86_400.0}}
    a = instance_settings(tmp_path, nats_server.client_url, "site-a", **notice)
    b = instance_settings(tmp_path, nats_server.client_url, "site-b", **notice)
    async with running_services(a, ["catalog"], http=False) as rt_a:
        leader = catalog_of(rt_a)
        await eventually(lambda: leader.is_leader, what="site-a to lead", timeout=60)
        async with running_services(b, ["catalog"], http=False) as rt_b:
            standby = catalog_of(rt_b)
            assert not standby.is_leader

            async def customer_added() -> bool:
                await bus.call(CUSTOMER_ADD, CustomerAdd(slug="acme"), timeout=30)
                return True

            await eventually(customer_added, what="the leader's write path", timeout=60)
            end = time.time() + NOTICE_S + DUE_IN_S
            plan = SubscriptionSet(
                subscription_id="crm-9", customer="acme", start=end - 86_400, end=end, revision=1
            )
            await bus.call(SUBSCRIPTION_SET, plan, timeout=30)
            await books_stream_limit(bus, 64)  # every row is larger: the stream refuses it
            try:
                await eventually(lambda: warned_end(b, "crm-9") is None, what="the standby's row", timeout=60)

                def refused() -> bool:
                    h = leader.health()
                    return h.state == "degraded" and "refused" in h.detail

                await eventually(
                    refused, what="the leader's warning refused by the stream", timeout=DUE_IN_S + 60
                )
                # Not recorded by the leader either: its row is not ahead of the standby's.
                assert warned_end(a, "crm-9") is None
            finally:
                await books_stream_limit(bus, 1024 * 1024)

            await eventually(
                lambda: warned_end(b, "crm-9") == end, what="the standby's warned row", timeout=60
            )
            assert warned_end(a, "crm-9") == end
            assert leader.is_leader and not standby.is_leader  # no takeover did it
            await eventually(lambda: leader.health().state == "ok", what="the leader's clock to recover")
