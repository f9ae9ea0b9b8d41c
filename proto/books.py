"""The catalog's subscription and webhook books as events (stream ``CATALOG_BOOKS``).

The leader records every change to a book as the row it left behind: a subscription's
row after a CRM request, an "ends soon" mail or an end; an endpoint's row after it was
added or removed. Every catalog instance folds these into its own sqlite (the leader
included), keyed by the row's natural key, so a replay or a redelivery changes nothing
and a standby that takes over answers from the same books. ``foto3d objects rebuild``
reads the stream from its first message.

The webhook delivery log is replicated the same way: each delivery's row (attempts, last
status and error, when delivered) after every change, kept in the stream for
``DELIVERY_LOG_KEEP_S`` after its last change (per-message TTL).

The stream carries the endpoints' signing secrets as they are (the catalog signs each
delivery with them): only catalog identities may read it (``proto/permissions.py``).
"""

from __future__ import annotations

from foto3d.proto.base import Event, Int, Real


class HistoryEntry(Event, frozen=True, kw_only=True, tag="subscription.history/1"):
    """One request on the subscription API as the book kept it (who, when, what it did)."""

    ts: Real
    actor: str
    outcome: str
    revision: Int
    body: str


class SubscriptionRecorded(Event, frozen=True, kw_only=True, tag="subscription.recorded/1"):
    """A subscription's row in the book after a change (set, warned, ended)."""

    subscription_id: str
    customer: str
    object_id: str = ""
    start: Real
    end: Real
    requested: str
    revision: Int
    body: str
    updated: Real
    updated_by: str
    cancelled_at: Real | None = None
    warned_end: Real | None = None
    ended_at: Real | None = None
    # The request that made this change, when one did (the clock's steps have none).
    history: HistoryEntry | None = None


class EndpointRecorded(Event, frozen=True, kw_only=True, tag="webhook.endpoint/1"):
    """A webhook endpoint's row after it was added or removed (``removed`` set)."""

    endpoint_id: str
    customer: str
    url: str
    secret: str
    created: Real
    created_by: str
    removed: Real | None = None


# How long a delivery's row stays in CATALOG_BOOKS after its last change (its ``Nats-TTL``): what
# a new instance or a rebuild gets of the delivery log. Longer than any delivery is retried
# (WEBHOOKS keeps a delivery 7 days at most).
DELIVERY_LOG_KEEP_S = 30 * 86_400


class DeliveryRecorded(Event, frozen=True, kw_only=True, tag="webhook.delivery/1"):
    """One webhook delivery's row in the delivery log after it was queued or attempted."""

    delivery_id: str
    endpoint_id: str
    customer: str
    webhook_type: str
    created: Real
    state: str
    attempts: Int
    last_status: Int
    last_error: str
    last_attempt: Real
    delivered: Real


BookEvent = SubscriptionRecorded | EndpointRecorded | DeliveryRecorded
