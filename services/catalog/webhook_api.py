"""``f3d.api.webhooks.*``: staff add and remove a customer's endpoints and read the delivery log."""

from __future__ import annotations

from typing import Any

from foto3d.libs.bus.micro import Endpoint
from foto3d.proto.api import NOT_FOUND, ServiceError
from foto3d.proto.webhooks import (
    WEBHOOK_ADD,
    WEBHOOK_DELIVERIES,
    WEBHOOK_LIST,
    WEBHOOK_REMOVE,
    CustomerRef,
    DeliveryView,
    EndpointAdd,
    EndpointRef,
    EndpointView,
    WebhookType,
)
from foto3d.services.catalog.store import CatalogStore
from foto3d.services.catalog.webhook_book import WebhookBook
from foto3d.services.catalog.writes import WriteRoute


def endpoint_view(row: dict[str, Any], secret: bool = False) -> EndpointView:
    return EndpointView(
        endpoint_id=row["endpoint_id"],
        customer=row["customer"],
        url=row["url"],
        created=row["created"],
        created_by=row["created_by"],
        secret=row["secret"] if secret else "",
    )


def delivery_view(row: dict[str, Any]) -> DeliveryView:
    return DeliveryView(
        delivery_id=row["delivery_id"],
        endpoint_id=row["endpoint_id"],
        customer=row["customer"],
        type=WebhookType(row["type"]),
        created=row["created"],
        state=row["state"],
        attempts=row["attempts"],
        last_status=row["last_status"],
        last_error=row["last_error"],
        last_attempt=row["last_attempt"],
        delivered=row["delivered"],
    )


def endpoints(book: WebhookBook, store: CatalogStore, leader: WriteRoute) -> list[Endpoint]:
    """Every call runs on the leader: it changes the book and publishes the row
    (``book_events.py``); the delivery log it reads is the leader's own."""

    async def add(req: EndpointAdd) -> EndpointView:
        if await store.customer(req.customer) is None:
            raise ServiceError(NOT_FOUND, f"unknown customer {req.customer!r}")
        return endpoint_view(await book.add_endpoint(req.customer, req.url, req.actor), secret=True)

    async def remove(ref: EndpointRef) -> EndpointView:
        row = await book.endpoint(ref.endpoint_id)
        if row is None or not await book.remove_endpoint(ref.endpoint_id):
            raise ServiceError(NOT_FOUND, f"no webhook endpoint {ref.endpoint_id!r} in use")
        return endpoint_view(row)

    async def list_(ref: CustomerRef) -> list[EndpointView]:
        return [endpoint_view(r) for r in await book.endpoints(ref.customer)]

    async def deliveries(ref: CustomerRef) -> list[DeliveryView]:
        return [delivery_view(r) for r in await book.deliveries(ref.customer, ref.limit)]

    return [
        leader.serve(WEBHOOK_ADD, add, actor="actor"),
        leader.serve(WEBHOOK_REMOVE, remove, actor="actor"),
        leader.serve(WEBHOOK_LIST, list_),
        leader.serve(WEBHOOK_DELIVERIES, deliveries),
    ]
