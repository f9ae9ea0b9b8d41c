"""What becomes a webhook: object events (read from ``OBJECT_EVENTS``) and a subscription's
coming end (from the subscription clock), each queued once per endpoint of the customer.

A delivery's id is derived from the endpoint and the source event, so a source event seen
again (a redelivery, a restart) queues nothing new: the ``WEBHOOKS`` stream drops the repeat
by its ``Nats-Msg-Id`` and the log skips one that has already been delivered.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from foto3d.libs.bus.connection import Bus
from foto3d.libs.bus.consume import Delivery
from foto3d.proto import subjects
from foto3d.proto.objects import (
    LiveStatus,
    ObjectEvent,
    ObjectPublished,
    ObjectStatusChanged,
    ObjectViewerSaved,
)
from foto3d.proto.webhooks import WebhookDelivery, WebhookType
from foto3d.services.catalog.webhook_book import PENDING, WebhookBook


def delivery_id(endpoint_id: str, source_id: str) -> str:
    return "wd_" + hashlib.sha256(f"{endpoint_id}|{source_id}".encode()).hexdigest()[:32]


def customer_of(object_id: str) -> str:
    """Object ids begin with their customer's slug (which has no dashes): the naming standard."""
    return object_id.split("-", 1)[0]


def webhook_of(ev: ObjectEvent) -> tuple[WebhookType, dict[str, Any]] | None:
    """The customer-facing event an object event makes, if any."""
    if isinstance(ev, ObjectPublished):
        published: dict[str, Any] = {
            "object_id": ev.object_id,
            "version": ev.version,
            "live_url": ev.live_url,
        }
        if ev.rollback_from:
            published["rollback_from"] = ev.rollback_from
        return WebhookType.MODEL_PUBLISHED, published
    if isinstance(ev, ObjectStatusChanged):
        data: dict[str, Any] = {"object_id": ev.object_id, "status": ev.status.value}
        if ev.previous is not None:
            data["previous"] = ev.previous.value
        if ev.status == LiveStatus.DISABLED:
            return WebhookType.MODEL_DISABLED, data | {"reason": ev.reason}
        return WebhookType.MODEL_UPDATED, data
    if isinstance(ev, ObjectViewerSaved):
        return WebhookType.MODEL_UPDATED, {"object_id": ev.object_id, "viewer_version": ev.version}
    return None


class WebhookQueue:
    def __init__(self, book: WebhookBook, bus: Bus) -> None:
        self.book = book
        self.bus = bus

    async def enqueue(
        self, customer: str, event: WebhookType, data: dict[str, Any], source_id: str, created: float
    ) -> int:
        """Queue ``event`` for every endpoint of ``customer``; how many were queued."""
        n = 0
        for ep in await self.book.endpoints(customer):
            did = delivery_id(ep["endpoint_id"], source_id)
            known = await self.book.delivery(did)
            if known is not None and known["state"] != PENDING:
                continue
            msg = WebhookDelivery(
                delivery_id=did, endpoint_id=ep["endpoint_id"], customer=customer, event=event,
                created=created, data=data,
            )  # fmt: skip
            # Queued before it is logged: a failure in between queues it again (same id).
            await self.bus.publish(subjects.webhooks(customer), msg, msg_id=did)
            await self.book.logged(did, ep["endpoint_id"], customer, event.value, created)
            n += 1
        return n

    async def on_object_events(self, batch: list[Delivery[Any]]) -> None:
        for d in batch:
            ev = d.event
            made = webhook_of(ev) if ev is not None else None
            if made is None:
                continue
            kind, data = made
            await self.enqueue(customer_of(ev.object_id), kind, data, ev.event_id, ev.ts or time.time())
