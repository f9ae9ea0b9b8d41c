"""The consumers the notifier reads: new log batches, job events and staff notices (not the history)."""

from __future__ import annotations

from nats.js.api import DeliverPolicy

from foto3d.libs.bus.connection import Bus
from foto3d.libs.bus.topology import ConsumerSpec, instance_copy
from foto3d.proto import subjects

WATCH_LOGS = ConsumerSpec(
    subjects.LOGS_STREAM,
    "notifier-logs",
    "Watches log batches for ERROR and CRITICAL records.",
    deliver_policy=DeliverPolicy.NEW,
)
WATCH_JOBS = ConsumerSpec(
    subjects.JOB_EVENTS_STREAM,
    "notifier-jobs",
    "Watches job events for failed and dead jobs.",
    deliver_policy=DeliverPolicy.NEW,
)
WATCH_NOTICES = ConsumerSpec(
    subjects.AUTH_NOTICES_STREAM,
    "notifier-notices",
    "Mails for one staff member about their account (a sign-in from a new address).",
    deliver_policy=DeliverPolicy.NEW,
)


async def instance_consumers(bus: Bus, instance: str | None) -> dict[str, ConsumerSpec]:
    """The consumers one instance reads, by their declared name.

    A named instance (several notifiers) gets its own copy of each declared consumer, so
    every instance sees every message and keeps a warm projection; the unnamed single
    instance uses the declared ones.
    """
    specs = {c.durable: c for c in (WATCH_LOGS, WATCH_JOBS, WATCH_NOTICES)}
    if instance is None:
        return specs
    return {name: await instance_copy(bus.js, spec, instance) for name, spec in specs.items()}
