"""The subscription and webhook books survive a kill -9 of the catalog leader.

Set through the leader, both books reach the standby as events (``CATALOG_BOOKS``); after
the leader's process group is killed the standby takes over and answers both books with
the same content, its subscription clock ends the subscription when it is due, and the
"ends soon" webhook the old leader had queued (its endpoint was down) is delivered, signed
with the endpoint's secret, to a real HTTP receiver. The delivery log follows too: the old
leader's attempts are on the standby before the kill, and the new leader's count goes on.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

from foto3d.libs.bus.connection import Bus
from foto3d.libs.nats_server import NatsServer
from foto3d.proto.objects import CUSTOMER_ADD, CustomerAdd
from foto3d.proto.subscriptions import (
    SUBSCRIPTION_SET,
    SUBSCRIPTION_SHOW,
    SubscriptionRef,
    SubscriptionSet,
    SubscriptionState,
)
from foto3d.proto.webhooks import (
    WEBHOOK_ADD,
    WEBHOOK_DELIVERIES,
    WEBHOOK_LIST,
    CustomerRef,
    EndpointAdd,
    WebhookType,
    verify,
)
from testkit.waiting import eventually
from tests.catalog.test_standby import Instance, catalogs, role, rows
from tests.catalog.test_webhooks import Receiver

# Long enough for the takeover (the lease's TTL plus the catch-up) to come first.
RUNS_FOR_S = 60.0


def books(inst: Instance) -> dict[str, list[tuple[Any, ...]]]:
    """Both books of one instance, as rows (the delivery log, which changes with every
    attempt, is compared on its own)."""
    folder = inst.data / "catalog"
    return {
        "subscriptions": rows(folder / "subscriptions.db", "SELECT * FROM subscriptions ORDER BY 1"),
        "history": rows(
            folder / "subscriptions.db",
            "SELECT subscription_id, ts, actor, outcome, revision, body FROM history ORDER BY ts",
        ),
        "endpoints": rows(folder / "webhooks.db", "SELECT * FROM endpoints ORDER BY 1"),
    }


def delivery_row(inst: Instance, delivery_id: str) -> dict[str, Any] | None:
    db = inst.data / "catalog" / "webhooks.db"
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        conn.row_factory = sqlite3.Row
        row = conn.execute("SELECT * FROM deliveries WHERE delivery_id=?", (delivery_id,)).fetchone()
    return dict(row) if row else None


async def test_the_books_are_the_same_on_the_standby_and_go_on_after_a_kill_9_of_the_leader(
    tmp_path: Path, nats_server: NatsServer, bus: Bus
) -> None:
    rx = Receiver()  # not listening yet: the leader's attempts fail and the delivery waits
    try:
        async with catalogs(tmp_path, nats_server.client_url, "site-a", "site-b") as (a, b):

            async def leader_known() -> bool:
                return {await role(a), await role(b)} == {"leader", "standby"}

            await eventually(leader_known, what="one leader", timeout=90)
            leader, standby = (a, b) if await role(a) == "leader" else (b, a)

            await bus.call(CUSTOMER_ADD, CustomerAdd(slug="acme", name="ACME"), timeout=30)
            ep = await bus.call(WEBHOOK_ADD, EndpointAdd(customer="acme", url=rx.url), timeout=30)
            now = time.time()
            end = now + RUNS_FOR_S
            plan = SubscriptionSet(
                subscription_id="crm-1", customer="acme", start=now - 60, end=end, revision=1
            )
            await bus.call(SUBSCRIPTION_SET, plan, timeout=30)
            # A replay (the CRM resending) changes nothing, on either instance.
            await bus.call(SUBSCRIPTION_SET, plan, timeout=30)

            # Within the notice period: the leader warns at once and queues the "ends soon"
            # webhook, which it tries against the closed port.
            async def queued() -> Any:
                log = await bus.call(WEBHOOK_DELIVERIES, CustomerRef(customer="acme"), timeout=30)
                return (
                    log[0] if len(log) == 1 and log[0].attempts >= 1 and log[0].state == "pending" else None
                )

            waiting = await eventually(
                queued, what="the webhook tried while the endpoint is down", timeout=60
            )
            assert waiting.type == WebhookType.SUBSCRIPTION_ENDING

            async def warned() -> Any:
                shown = await bus.call(
                    SUBSCRIPTION_SHOW, SubscriptionRef(subscription_id="crm-1"), timeout=30
                )
                return shown if shown.warned else None

            shown_before = await eventually(warned, what="the 'ends soon' step recorded", timeout=30)
            listed_before = await bus.call(WEBHOOK_LIST, CustomerRef(customer="acme"), timeout=30)
            assert [e.endpoint_id for e in listed_before] == [ep.endpoint_id]

            def same_books() -> bool:
                theirs = books(leader)
                return bool(theirs["subscriptions"] and theirs["endpoints"]) and books(standby) == theirs

            await eventually(same_books, what="the standby's books to equal the leader's", timeout=60)
            assert len(books(standby)["history"]) == 2  # the request and its replay

            # The delivery log too: the standby's copy has the leader's attempts.
            def standby_logged() -> Any:
                got = delivery_row(standby, waiting.delivery_id)
                return got if got and got["attempts"] >= waiting.attempts else None

            seen = await eventually(standby_logged, what="the leader's attempts on the standby", timeout=60)
            assert (seen["state"], seen["type"], seen["endpoint_id"]) == (
                "pending",
                waiting.type.value,
                ep.endpoint_id,
            )
            assert seen["last_error"]

            os.killpg(leader.proc.pid, signal.SIGKILL)
            leader.proc.wait(10)

            async def took_over() -> bool:
                return await role(standby) == "leader"

            await eventually(took_over, what="the standby to lead", timeout=60)
            shown_after = await bus.call(
                SUBSCRIPTION_SHOW, SubscriptionRef(subscription_id="crm-1"), timeout=30
            )
            if shown_after.state == SubscriptionState.ACTIVE:  # (not ended yet, as expected)
                assert shown_after == shown_before
            assert await bus.call(WEBHOOK_LIST, CustomerRef(customer="acme"), timeout=30) == listed_before

            # The endpoint comes up: the queued delivery arrives, signed with its secret.
            await rx.start()

            def delivered() -> Any:
                got = [s for s in rx.seen if s[0] == waiting.delivery_id and s[3] == "ok"]
                return got[0] if got else None

            _, body, sig, _ = await eventually(delivered, what="the queued webhook delivered", timeout=120)
            assert verify(ep.secret, sig, body, time.time(), window=600)

            # The new leader's log goes on from the old leader's attempts.
            async def logged_delivered() -> Any:
                log = await bus.call(WEBHOOK_DELIVERIES, CustomerRef(customer="acme"), timeout=30)
                return log[0] if len(log) == 1 and log[0].state == "delivered" else None

            after = await eventually(logged_delivered, what="the delivery logged as delivered", timeout=60)
            assert after.delivery_id == waiting.delivery_id
            assert after.attempts >= seen["attempts"] + 1, (after, seen)

            # The new leader's clock ends the subscription when it is due, not before.
            async def ended() -> Any:
                shown = await bus.call(
                    SUBSCRIPTION_SHOW, SubscriptionRef(subscription_id="crm-1"), timeout=30
                )
                return shown if shown.state == SubscriptionState.ENDED else None

            done = await eventually(ended, what="the subscription ended", timeout=RUNS_FOR_S + 90)
            assert done.ended_at is not None and done.ended_at >= end
            # The warning was not repeated by the new leader (its book knew it was sent).
            assert {s[0] for s in rx.seen} == {waiting.delivery_id}
    finally:
        await rx.stop()
