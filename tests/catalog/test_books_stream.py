"""``CATALOG_BOOKS`` keeps one message per row (and per history entry), not one per publish.

A new leader publishes every row of its books once; with the stream's newest-per-subject
limit, takeovers do not make it grow, and a fresh instance still folds the same books,
the webhook delivery log included (each delivery's newest row, with its age limit).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from foto3d.libs.bus.connection import Bus
from foto3d.libs.bus.topology import STREAMS, provision_stream
from foto3d.proto import subjects
from foto3d.proto.books import DELIVERY_LOG_KEEP_S
from foto3d.proto.subscriptions import SubscriptionSet
from foto3d.services.catalog.book_events import BookPublisher, CatalogBooks
from foto3d.services.catalog.rebuild import rebuild_books
from foto3d.services.catalog.subscriptions import SubscriptionBook
from foto3d.services.catalog.webhook_book import DELIVERED, FAILED, PENDING, WebhookBook


@asynccontextmanager
async def opened_books(folder: Path) -> AsyncIterator[CatalogBooks]:
    folder.mkdir(parents=True, exist_ok=True)
    books = CatalogBooks(
        await SubscriptionBook(folder / "subscriptions.db").open(),
        await WebhookBook(folder / "webhooks.db").open(),
    )
    try:
        yield books
    finally:
        await books.subscriptions.close()
        await books.webhooks.close()


async def contents(books: CatalogBooks) -> dict[str, Any]:
    subs = await books.subscriptions.rows()
    return {
        "subscriptions": subs,
        "history": {
            s["subscription_id"]: await books.subscriptions.history(s["subscription_id"]) for s in subs
        },
        "endpoints": await books.webhooks.all_endpoints(),
        "deliveries": await books.webhooks.deliveries(),
    }


async def stream_subjects(bus: Bus) -> dict[str, int]:
    info = await bus.js.stream_info(subjects.CATALOG_BOOKS_STREAM, subjects_filter=">")
    return dict(info.state.subjects or {})


async def test_takeovers_keep_one_message_per_row_and_a_fresh_instance_folds_the_same_books(
    tmp_path: Path, bus: Bus
) -> None:
    now = time.time()
    async with opened_books(tmp_path / "leader") as books:
        BookPublisher(bus, books)  # the leader's publisher: every change goes on the stream
        sub = books.subscriptions
        plan = SubscriptionSet(
            subscription_id="crm.1", customer="acme", start=now, end=now + 86_400, revision=1
        )
        await sub.apply(plan, now)
        await sub.apply(plan, now + 1)  # a replay: its own history entry
        await sub.apply(
            SubscriptionSet(subscription_id="crm.1", customer="acme", start=now, end=now + 3600, revision=2),
            now + 2,
        )
        # An id that ``token`` maps to the same subject token as the first one's.
        await sub.apply(
            SubscriptionSet(subscription_id="crm_1", customer="acme", start=now, end=now + 99, revision=1),
            now + 3,
        )
        await sub.mark_warned("crm.1", 2, now + 3600)  # a clock step: the row's subject
        kept = await books.webhooks.add_endpoint("acme", "https://example.com/hook", "ann")
        gone = await books.webhooks.add_endpoint("acme", "https://example.com/old", "ann")
        await books.webhooks.remove_endpoint(gone["endpoint_id"])
        assert kept["endpoint_id"] != gone["endpoint_id"]
        # The delivery log: one delivery tried twice and then delivered, one that failed.
        hooks = books.webhooks
        await hooks.logged("d-1", kept["endpoint_id"], "acme", "model.published", now)
        await hooks.attempted("d-1", 500, "HTTP 500", PENDING)
        await hooks.attempted("d-1", 0, "connection refused", PENDING)
        await hooks.attempted("d-1", 204, "", DELIVERED)
        await hooks.logged("d-2", gone["endpoint_id"], "acme", "model.disabled", now)
        await hooks.attempted("d-2", 0, "endpoint removed", FAILED)

        publisher = BookPublisher(bus, books)
        for _ in range(2):  # two takeovers, each publishing every row once
            await publisher.publish_all()
        before = await contents(books)

    rows = len(before["subscriptions"]) + len(before["endpoints"]) + len(before["deliveries"])
    entries = sum(len(h) for h in before["history"].values())
    assert (rows, entries) == (6, 4)
    logged = sorted((d["delivery_id"], d["attempts"], d["state"]) for d in before["deliveries"])
    assert logged == [("d-1", 3, DELIVERED), ("d-2", 1, FAILED)]
    per_subject = await stream_subjects(bus)
    assert set(per_subject.values()) == {1}, per_subject
    assert len(per_subject) == rows + entries, per_subject
    # A delivery's row leaves the stream after the log's keep time; the books' rows stay.
    last = await bus.js.get_last_msg(subjects.CATALOG_BOOKS_STREAM, subjects.catalog_books("delivery", "d-1"))
    assert (last.headers or {}).get("Nats-TTL") == str(DELIVERY_LOG_KEEP_S)
    row = await bus.js.get_last_msg(
        subjects.CATALOG_BOOKS_STREAM, subjects.catalog_books("subscription", "crm.1")
    )
    assert "Nats-TTL" not in (row.headers or {})

    async with opened_books(tmp_path / "fresh") as fresh:
        assert await rebuild_books(bus, fresh) == rows + entries
        assert await contents(fresh) == before


async def test_an_existing_books_stream_is_updated_in_place_at_start(bus: Bus) -> None:
    """A stream made before the limits (every publish kept, no message TTL) takes them when the
    topology is provisioned, and drops the older messages of each subject."""
    (spec,) = [s for s in STREAMS if s.name == subjects.CATALOG_BOOKS_STREAM]
    await bus.js.delete_stream(spec.name)
    await bus.js.add_stream(dataclasses.replace(spec, max_msgs_per_subject=-1, allow_msg_ttl=False).config())
    subject = subjects.catalog_books("endpoint", "we_1")
    for n in range(3):
        await bus.js.publish(subject, f"{n}".encode())
    assert await stream_subjects(bus) == {subject: 3}
    assert await provision_stream(bus.js, spec) == "updated"
    assert await stream_subjects(bus) == {subject: 1}
    assert (await bus.js.get_last_msg(spec.name, subject)).data == b"2"
    assert (await bus.js.stream_info(spec.name)).config.allow_msg_ttl
