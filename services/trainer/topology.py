"""The trainers' work consumers: ``trainer-vip`` is fetched before ``trainer-normal``.

A trainer calls in_progress() every ~10 s; 5 deliveries without an ack (a trainer that
keeps dying on the job) raise a MaxDeliver advisory and the queue marks the job dead.
The scaler and KEDA watch the same consumers by name (``foto3d.proto.subjects``).
"""

from __future__ import annotations

from foto3d.libs.bus.topology import ConsumerSpec
from foto3d.proto import subjects

VIP_WORK = ConsumerSpec(
    subjects.WORK_STREAM,
    subjects.TRAINER_VIP_CONSUMER,
    "VIP training work; trainers take it before normal work.",
    filter_subject=subjects.work_train("vip"),
    ack_wait=30.0,
    max_deliver=5,
    max_ack_pending=1_000,
)
NORMAL_WORK = ConsumerSpec(
    subjects.WORK_STREAM,
    subjects.TRAINER_NORMAL_CONSUMER,
    "Normal-priority training work.",
    filter_subject=subjects.work_train("normal"),
    ack_wait=30.0,
    max_deliver=5,
    max_ack_pending=1_000,
)
