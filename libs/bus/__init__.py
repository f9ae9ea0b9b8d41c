"""The NATS layer: connection, the declared topology, typed publish and pull consumers.

Modules, one concern each: ``subjects`` (names), ``topology`` (streams,
consumers, KV buckets and their provisioning), ``connection`` (connect with
unlimited reconnect), ``publish`` (typed, deduplicated, traced), ``consume``
(typed pull consumers that ack after the work is durable), ``micro``
(registration with the NATS services framework).
"""

from foto3d.libs.bus.connection import Bus, connect
from foto3d.libs.bus.consume import Delivery, PullConsumer
from foto3d.libs.bus.publish import PublishError

__all__ = ["Bus", "Delivery", "PublishError", "PullConsumer", "connect"]
