"""Stopping the catalog: nothing of it stays on its connection for the closing drain to wait on.

nats-py's drain waits until every subscription's queue is worked off; a pull subscription
that nobody reads any more (a fetch's late status reply sits in it) holds the drain until
its 30 s timeout, and so held every stop of the catalog and every `foto3d objects rebuild`.
"""

from __future__ import annotations

from pathlib import Path

from foto3d.libs.bus.connection import Bus
from foto3d.services.catalog import topology
from foto3d.services.catalog.settings import WebhookSettings
from foto3d.services.catalog.webhook_book import WebhookBook
from foto3d.services.catalog.webhook_sender import WebhookSender
from testkit.waiting import eventually


async def test_a_stopped_webhook_sender_leaves_no_subscription_behind(tmp_path: Path, bus: Bus) -> None:
    book = await WebhookBook(tmp_path / "webhooks.db").open()
    try:
        # The client's own table of subscriptions: what its drain will wait on.
        before = set(bus.nc._subs)
        sender = WebhookSender(book, bus, WebhookSettings(), topology.WEBHOOK_SENDER)
        sender.start()
        await eventually(lambda: set(bus.nc._subs) - before, what="the sender's subscription")
        await sender.stop()
        assert set(bus.nc._subs) == before
    finally:
        await book.close()
