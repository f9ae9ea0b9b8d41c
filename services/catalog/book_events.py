"""The subscription and webhook books on the bus: the leader publishes each changed row on
``CATALOG_BOOKS``; every instance (the leader too) folds the stream into its own books.

An event is the whole row, so folding it is idempotent and order-tolerant (``fold`` keeps the
newest revision, moves progress forward, never undoes a removal). Its ``Nats-Msg-Id`` is the
hash of its content: a retried publish of the same row is stored once.

The stream keeps only the newest message of each subject (as a KV bucket does): a row's
subject holds the row as it stands. A subscription's history entries are not rows, so the
row a CRM request left behind travels on the subject of its history entry
(``subjects.catalog_book_history``): every entry stays, and each carries the row of its time,
which the fold orders by revision like any other.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from typing import Any

from foto3d.libs.bus.connection import Bus
from foto3d.libs.bus.publish import PublishError
from foto3d.proto import subjects
from foto3d.proto.base import encode
from foto3d.proto.books import (
    DELIVERY_LOG_KEEP_S,
    BookEvent,
    DeliveryRecorded,
    EndpointRecorded,
    HistoryEntry,
    SubscriptionRecorded,
)
from foto3d.services.catalog.actions import FIRST_ON_SUBJECT, wrong_last_sequence
from foto3d.services.catalog.subscriptions import SubscriptionBook, recorded
from foto3d.services.catalog.webhook_book import WebhookBook, delivery_recorded, endpoint_recorded

log = logging.getLogger(__name__)
TTL = "Nats-TTL"  # JetStream's per-message age limit, in seconds (the stream allows it)


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
            elif isinstance(ev, DeliveryRecorded):
                await self.webhooks.fold_delivery(ev)


class BookPublisher:
    """Publishes the rows this instance changes (only the leader changes the books)."""

    def __init__(self, bus: Bus, books: CatalogBooks) -> None:
        self.bus = bus
        self.books = books
        books.subscriptions.changed = self.subscription
        books.webhooks.changed = self.endpoint
        books.webhooks.delivery_changed = self.delivery

    async def _publish(self, subject: str, ev: BookEvent, headers: dict[str, str] | None = None) -> None:
        msg_id = hashlib.sha256(encode(ev)).hexdigest()[:32]
        await self.bus.publish(subject, ev, msg_id=msg_id, headers=headers)

    async def subscription(self, row: dict[str, Any], history: HistoryEntry | None) -> None:
        ev = recorded(row, history)
        await self._publish(subject_of(ev), ev)

    async def endpoint(self, row: dict[str, Any]) -> None:
        ev = endpoint_recorded(row)
        await self._publish(subjects.catalog_books("endpoint", ev.endpoint_id), ev)

    async def delivery(self, row: dict[str, Any]) -> None:
        """A delivery's log row, kept for ``DELIVERY_LOG_KEEP_S`` (its own TTL). The log is a
        record, not the delivery: a publish that fails is logged and the delivery goes on (the
        row is published again with its next attempt)."""
        ev = delivery_recorded(row)
        try:
            await self._publish(
                subjects.catalog_books("delivery", ev.delivery_id),
                ev,
                headers={TTL: str(DELIVERY_LOG_KEEP_S)},
            )
        except PublishError as exc:
            log.warning("webhooks: publishing the log row of %s failed: %s", ev.delivery_id, exc)

    async def publish_all(self) -> int:
        """Every row of this instance's books once (a new leader does this after catching up):
        rows set before the books were events, or whose event a dying leader never published,
        reach every instance. Harmless otherwise: folding an older row changes nothing."""
        n = 0
        for row in await self.books.subscriptions.rows():
            await self.subscription(row, None)
            n += 1
            for entry in await self.books.subscriptions.history(row["subscription_id"]):
                n += await self._history_once(recorded(row, HistoryEntry(**entry)))
        for row in await self.books.webhooks.all_endpoints():
            await self.endpoint(row)
            n += 1
        return n

    async def _history_once(self, ev: SubscriptionRecorded) -> int:
        """Publish a history entry unless its subject holds it already (entries from before the
        stream kept one message per subject, or never published): a takeover adds none twice."""
        try:
            await self._publish(subject_of(ev), ev, headers={FIRST_ON_SUBJECT: "0"})
        except PublishError as exc:
            if wrong_last_sequence(exc):
                return 0
            raise
        return 1


def history_key(entry: HistoryEntry) -> str:
    """A history entry's natural key (the book's unique index), as a subject token."""
    key = f"{entry.ts!r}|{entry.actor}|{entry.outcome}|{entry.revision}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def subject_of(ev: SubscriptionRecorded) -> str:
    """Where a subscription's event goes: a request's on its history entry's own subject (so
    the entry is kept), a clock step's or a republished row's on the row's subject."""
    if ev.history is not None:
        return subjects.catalog_book_history(ev.subscription_id, history_key(ev.history))
    return subjects.catalog_books("subscription", ev.subscription_id)
