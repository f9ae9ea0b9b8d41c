"""The consumers the catalog reads (every object event and every job event) and its writer lease."""

from __future__ import annotations

from nats.js.api import DeliverPolicy

from foto3d.libs.bus.topology import ConsumerSpec, KVSpec, ObjectStoreSpec
from foto3d.proto import subjects
from foto3d.proto.permissions import CATALOG_LEASE_BUCKET, CATALOG_NOTES_BUCKET, CATALOG_REFS_BUCKET

OBJECT_EVENTS = ConsumerSpec(
    subjects.OBJECT_EVENTS_STREAM,
    "catalog-objects",
    "Builds object states and timelines in the catalog.",
)
JOB_EVENTS = ConsumerSpec(
    subjects.JOB_EVENTS_STREAM, "catalog-jobs", "Adds job events to object timelines in the catalog."
)
BOOK_EVENTS = ConsumerSpec(
    subjects.CATALOG_BOOKS_STREAM,
    "catalog-books",
    "Folds the subscription and webhook books' changes into the catalog's copies.",
)
# Webhooks: object events from when the catalog first ran (not the history), and the queue
# of deliveries. An attempt lasts at most [catalog.webhooks] timeout_s (25 s), so a
# delivery held by a process that died is offered again after 30 s.
WEBHOOK_SOURCE = ConsumerSpec(
    subjects.OBJECT_EVENTS_STREAM,
    "catalog-webhooks",
    "Turns object events into webhook deliveries for customers' endpoints.",
    deliver_policy=DeliverPolicy.NEW,
)
WEBHOOK_SENDER = ConsumerSpec(
    subjects.WEBHOOKS_STREAM,
    "catalog-webhook-sender",
    "Sends webhook deliveries to customers' endpoints, retrying with backoff.",
    ack_wait=30.0,
    max_ack_pending=1000,
)
# Who writes: only the holder of this lease publishes the catalog's changes and runs its
# timers (webhook deliveries, subscription ends); the other instances stand by warm.
WRITER_LEASE = KVSpec(
    CATALOG_LEASE_BUCKET,
    "Leadership lease of the catalog: only the holder writes; standbys forward writes to it.",
    ttl=5.0,
)
# Reference images: written here before the registration that names them is published, so
# every instance (and a rebuild) finds them; the files beside the database are a cache.
REFERENCE_IMAGES = ObjectStoreSpec(
    CATALOG_REFS_BUCKET,
    "The catalog's reference images (one object per catalog object), read by every instance.",
)
# Capture notes' photos, the same way: in the bucket before the note's event is published.
NOTE_PHOTOS = ObjectStoreSpec(
    CATALOG_NOTES_BUCKET,
    "The photos of the catalog's capture notes (one object per photo), read by every instance.",
)
