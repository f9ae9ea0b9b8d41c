"""The consumer the log collector reads: every log batch, into the store."""

from __future__ import annotations

from foto3d.libs.bus.topology import ConsumerSpec
from foto3d.proto import subjects

STORE_LOGS = ConsumerSpec(
    subjects.LOGS_STREAM,
    "log-collector",
    "Stores every log batch in the log store.",
    # Storing is idempotent (unique source+seq), so an early redelivery costs
    # nothing, while a short wait brings a crashed collector's batches back sooner.
    ack_wait=10.0,
)
