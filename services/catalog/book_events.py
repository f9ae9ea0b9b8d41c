"""The subscription and webhook books on the bus: the leader publishes each changed row on
``CATALOG_BOOKS``; every instance (the leader too) folds the stream into its own books.

An event is the whole row, so folding it is idempotent and order-tolerant (``fold`` keeps the
newest revision, moves progress forward, never undoes a removal). Its ``Nats-Msg-Id`` is the
hash of its content: a retried publish of the same row is stored once.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from typing import Any

from foto3d.libs.bus.connection import Bus
from foto3d.proto import subjects
from foto3d.proto.base import encode
from foto3d.proto.books import BookEvent, EndpointRecorded, HistoryEntry, SubscriptionRecorded
from foto3d.services.catalog.subscriptions import SubscriptionBook, recorded
from foto3d.services.catalog.webhook_book import WebhookBook, endpoint_recorded

log = logging.getLogger(__name__)


class CatalogBooks:
    """Both books of one instance, as one target for the stream's events."""

    def __init__(self, subscriptions: SubscriptionBook, webhooks: WebhookBook) -> None:
        self.subscriptions = subscriptions
        self.webhooks = webhooks

    async def ingest(self, events: Iterable[BookEvent | None]) -> None:
        for ev in events:
            if isinstance(ev, SubscriptionRecorded):
                await self.subscriptions.fold(ev)
            elif isinstance(ev, EndpointRecorded):
                await self.webhooks.fold(ev)


class BookPublisher:
    """Publishes the rows this instance changes (only the leader changes the books)."""

    def __init__(self, bus: Bus, books: CatalogBooks) -> None:
        self.bus = bus
        self.books = books
        books.subscriptions.changed = self.subscription
        books.webhooks.changed = self.endpoint

    async def _publish(self, subject: str, ev: BookEvent) -> None:
        await self.bus.publish(subject, ev, msg_id=hashlib.sha256(encode(ev)).hexdigest()[:32])

    async def subscription(self, row: dict[str, Any], history: HistoryEntry | None) -> None:
        ev = recorded(row, history)
        await self._publish(subjects.catalog_books("subscription", ev.subscription_id), ev)

    async def endpoint(self, row: dict[str, Any]) -> None:
        ev = endpoint_recorded(row)
        await self._publish(subjects.catalog_books("endpoint", ev.endpoint_id), ev)

    async def publish_all(self) -> int:
        """Every row of this instance's books once (a new leader does this after catching up):
        rows set before the books were events, or whose event a dying leader never published,
        reach every instance. Harmless otherwise: folding an older row changes nothing."""
        n = 0
        for row in await self.books.subscriptions.rows():
            await self.subscription(row, None)
            n += 1
        for row in await self.books.webhooks.all_endpoints():
            await self.endpoint(row)
            n += 1
        return n
