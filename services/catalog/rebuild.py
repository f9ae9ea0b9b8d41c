"""Rebuild the catalog's database from the event streams and the stored reference images.

The catalog's sqlite is a projection: every object's registration, capture, review,
status and publication is an event in OBJECT_EVENTS (kept forever), and every job's
progress one in JOB_EVENTS. When the database is lost, a fresh one is filled by reading
both streams from their first message through the same ``ingest`` the live consumers
use (idempotent, guarded by event time, so the order between the two streams does not
matter). Live consumers stay where they were: what they deliver later was either read
here too (recorded once) or is newer.

Customers are events on OBJECT_EVENTS too (``customer.added/1``: slug, name, who, when).
What the streams do not hold (docs/failover.md): customers added before that event existed
(only their ids appear, in their objects' events; the rebuilt rows take the id as the
name), and job events older than JOB_EVENTS' 90 days. Reference images and capture notes'
photos are not events: they live in the ``catalog-refs`` and ``catalog-notes`` object stores,
from which the rebuild restores the cache files (and counts the images and photos that are
in neither the bucket nor the folder).

The subscription and webhook books (their own files) come back from ``CATALOG_BOOKS`` the
same way (``rebuild_books``); the webhook delivery log is not an event and starts empty.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import nats.errors
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import FetchTimeoutError

from foto3d.libs.bus.connection import Bus
from foto3d.proto import subjects
from foto3d.proto.base import tolerant_decoder
from foto3d.proto.books import BookEvent
from foto3d.proto.jobs import JobEvent
from foto3d.proto.objects import ObjectStreamEvent
from foto3d.services.catalog.book_events import CatalogBooks
from foto3d.services.catalog.note_photos import NotePhotos, photo_name
from foto3d.services.catalog.refs import ReferenceImages
from foto3d.services.catalog.store import CatalogStore

log = logging.getLogger(__name__)
BATCH = 1000


@dataclass
class RebuildReport:
    object_events: int = 0
    job_events: int = 0
    book_events: int = 0
    objects: int = 0
    customers: int = 0
    missing_images: list[str] = field(default_factory=list)
    missing_photos: list[str] = field(default_factory=list)  # <note_id>-<index> of notes' photos
    seconds: float = 0.0

    def line(self) -> str:
        text = (
            f"catalog rebuilt from the event streams in {self.seconds:.1f} s: {self.objects} objects, "
            f"{self.customers} customers, {self.object_events} object events, {self.job_events} job events, "
            f"{self.book_events} subscription/webhook book events"
        )
        if self.missing_images:
            text += f"; {len(self.missing_images)} reference image(s) missing (e.g. {self.missing_images[0]})"
        if self.missing_photos:
            text += f"; {len(self.missing_photos)} note photo(s) missing (e.g. {self.missing_photos[0]})"
        return text


async def _replay(
    bus: Bus, stream: str, decode: Callable[[bytes, Any], Any], store: CatalogStore | CatalogBooks
) -> int:
    """Every message of ``stream`` from its first, into the store; returns how many were read."""
    info = await bus.js.stream_info(stream)
    last = int(info.state.last_seq)
    if int(info.state.messages) == 0:
        return 0
    name = f"catalog-rebuild-{uuid.uuid4().hex[:10]}"
    cfg = ConsumerConfig(
        name=name,
        ack_policy=AckPolicy.NONE,
        deliver_policy=DeliverPolicy.ALL,
        inactive_threshold=60.0,
        mem_storage=True,
        num_replicas=1,
        max_ack_pending=-1,
    )
    await bus.js.add_consumer(stream, cfg)
    sub = await bus.js.pull_subscribe_bind(name, stream)
    read = 0
    try:
        seq = 0
        while seq < last:
            try:
                msgs = await sub.fetch(BATCH, timeout=2.0)
            except (TimeoutError, FetchTimeoutError, nats.errors.TimeoutError):
                break  # the stream's remaining messages were removed meanwhile (limits)
            events = []
            for m in msgs:
                seq = max(seq, int(m.metadata.sequence.stream))
                try:
                    ev = decode(m.data, m.headers or {})
                except Exception as exc:  # one bad message must not stop a rebuild
                    log.warning("catalog rebuild: %s message %d skipped: %r", stream, seq, exc)
                    continue
                if ev is not None:
                    events.append(ev)
            read += len(msgs)
            await store.ingest(events)
    finally:
        try:
            await sub.unsubscribe()
            await bus.js.delete_consumer(stream, name)
        except (TimeoutError, nats.errors.Error):
            pass
    return read


async def rebuild(bus: Bus, store: CatalogStore, refs_dir: Path, notes_dir: Path) -> RebuildReport:
    """Fill ``store`` (new and empty) from OBJECT_EVENTS and JOB_EVENTS, and the image folders
    (reference images in ``refs_dir``, notes' photos in ``notes_dir``) from their buckets."""
    started = time.monotonic()
    report = RebuildReport()
    report.object_events = await _replay(
        bus, subjects.OBJECT_EVENTS_STREAM, tolerant_decoder(ObjectStreamEvent), store
    )
    report.job_events = await _replay(bus, subjects.JOB_EVENTS_STREAM, tolerant_decoder(JobEvent), store)
    report.customers = await store_customers_from_objects(store)
    rows = list(await store.db.execute_fetchall("SELECT object_id, reference_image FROM objects"))
    report.objects = len(rows)
    refs = ReferenceImages(bus, refs_dir)
    have = {Path(name).stem for name in await refs.restore() | await refs.local_names()}
    report.missing_images = sorted(
        str(r[0]) for r in rows if str(r[1]).endswith("/reference") and str(r[0]) not in have
    )
    photos = NotePhotos(bus, notes_dir)
    have = {Path(name).stem for name in await photos.restore() | await photos.local_names()}
    noted = await store.db.execute_fetchall("SELECT note_id, photos FROM notes WHERE photos != '[]'")
    report.missing_photos = sorted(
        stem
        for note_id, urls in noted
        for i in range(len(msgspec.json.decode(urls)))
        if (stem := photo_name(str(note_id), i, "")) not in have
    )
    report.seconds = time.monotonic() - started
    return report


async def rebuild_books(bus: Bus, books: CatalogBooks) -> int:
    """Fill the (new) subscription and webhook books from CATALOG_BOOKS; how many events."""
    return await _replay(bus, subjects.CATALOG_BOOKS_STREAM, tolerant_decoder(BookEvent), books)


async def store_customers_from_objects(store: CatalogStore) -> int:
    """Customers added before ``customer.added/1`` appear only as the ids of their objects:
    recreate those rows (the ones that had an event are there already and kept)."""
    db = store.db
    await db.execute(
        "INSERT OR IGNORE INTO customers(slug, name, created, actor) "
        "SELECT customer, customer, min(created), '' FROM objects GROUP BY customer"
    )
    await db.commit()
    cur = await db.execute("SELECT count(*) FROM customers")
    row = await cur.fetchone()
    return int(row[0]) if row else 0


def database_is_new(path: Path) -> bool:
    """True when the catalog's database file does not exist yet (first start, or lost)."""
    return not path.exists()
