"""``f3d.api.subscriptions.*``: the CRM's (and staff's) way to set and read subscriptions.

Authentication is the bus's: only identities of the ``crm`` and ``staff`` roles may publish
on these subjects (``proto/permissions.py``), each connection proving its key by signing the
server's nonce. Replays and reordering are handled by the book's revisions.
"""

from __future__ import annotations

import time

from foto3d.libs.bus.micro import Endpoint
from foto3d.proto.api import BAD_REQUEST, NOT_FOUND, ServiceError
from foto3d.proto.subscriptions import (
    SUBSCRIPTION_LIST,
    SUBSCRIPTION_SET,
    SUBSCRIPTION_SHOW,
    SetReply,
    SubscriptionQuery,
    SubscriptionRef,
    SubscriptionSet,
    SubscriptionView,
)
from foto3d.services.catalog.store import CatalogStore
from foto3d.services.catalog.subscription_clock import SubscriptionClock
from foto3d.services.catalog.subscriptions import SubscriptionBook, view
from foto3d.services.catalog.writes import WriteRoute


async def check(req: SubscriptionSet, store: CatalogStore) -> None:
    if req.end <= req.start:
        raise ServiceError(BAD_REQUEST, "a subscription's end must come after its start")
    if await store.customer(req.customer) is None:
        raise ServiceError(NOT_FOUND, f"unknown customer {req.customer!r}: add it to the catalog first")
    if req.object_id:
        obj = await store.get(req.object_id)
        if obj is None or obj.customer != req.customer:
            raise ServiceError(NOT_FOUND, f"customer {req.customer!r} has no model {req.object_id!r}")


def endpoints(
    book: SubscriptionBook, store: CatalogStore, clock: SubscriptionClock, leader: WriteRoute
) -> list[Endpoint]:
    """Every call runs on the leader: it changes the book and publishes the row
    (``book_events.py``); reads go there too, so a CRM reads its own write at once."""

    async def set_(req: SubscriptionSet) -> SetReply:
        await check(req, store)
        outcome, row = await book.apply(req, time.time())
        clock.wake()
        return SetReply(outcome=outcome, subscription=view(row, time.time()))

    async def show(ref: SubscriptionRef) -> SubscriptionView:
        row = await book.get(ref.subscription_id)
        if row is None:
            raise ServiceError(NOT_FOUND, f"no subscription {ref.subscription_id!r}")
        return view(row, time.time())

    async def list_(q: SubscriptionQuery) -> list[SubscriptionView]:
        now = time.time()
        return [view(r, now) for r in await book.rows(q.customer)]

    return [
        leader.serve(SUBSCRIPTION_SET, set_, actor="actor"),
        leader.serve(SUBSCRIPTION_SHOW, show),
        leader.serve(SUBSCRIPTION_LIST, list_),
    ]
