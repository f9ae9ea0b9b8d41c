"""What the queue reads and holds: durable submissions, MaxDeliver advisories, the leader lease."""

from __future__ import annotations

from foto3d.libs.bus.topology import ConsumerSpec, KVSpec
from foto3d.proto import subjects

SUBMISSIONS = ConsumerSpec(
    subjects.SUBMISSIONS_STREAM,
    "queue",
    "Durable submissions (rigs, offline clients); only the queue leader fetches.",
    ack_wait=10.0,
)
ADVISORIES = ConsumerSpec(
    subjects.QUEUE_ADVISORIES_STREAM,
    "queue",
    "MaxDeliver advisories of WORK; only the queue leader fetches.",
    ack_wait=10.0,
)
LEADER_LEASE = KVSpec(
    "queue-leader",
    "Leadership lease of the queue service: one key, renewed by the leader, expires when it stops.",
    ttl=5.0,
)
