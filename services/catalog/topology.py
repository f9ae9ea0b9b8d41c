"""The consumers the catalog reads: every object event and every job event."""

from __future__ import annotations

from foto3d.libs.bus.topology import ConsumerSpec
from foto3d.proto import subjects

OBJECT_EVENTS = ConsumerSpec(
    subjects.OBJECT_EVENTS_STREAM,
    "catalog-objects",
    "Builds object states and timelines in the catalog.",
)
JOB_EVENTS = ConsumerSpec(
    subjects.JOB_EVENTS_STREAM, "catalog-jobs", "Adds job events to object timelines in the catalog."
)
