"""Webhooks to customers: what is sent to a customer's endpoint, how it is signed, and the API.

Each delivery is an HTTP POST of a JSON body ``{"id", "type", "created", "data"}`` with
headers (names below): the delivery id (the same on every retry of one delivery: receivers
deduplicate on it, since delivery is at least once), the event type, and a signature
``t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" with the endpoint's secret>``. A
receiver recomputes the HMAC, compares it in constant time and refuses a ``t`` outside its
replay window (:data:`REPLAY_WINDOW_S` is what we advise); each attempt is signed afresh, so
a retry an hour later still falls inside the window. :func:`verify` is the reference check.

Deliveries wait in the ``WEBHOOKS`` stream (work-queue retention) until their endpoint
answers 2xx, retried with exponential backoff, so an endpoint that is down for hours loses
nothing.
"""

from __future__ import annotations

import hashlib
import hmac
from enum import StrEnum
from typing import Annotated, Any

import msgspec

from foto3d.proto.api import Api
from foto3d.proto.base import Count, Event, Real

DELIVERY_HEADER = "F3D-Delivery"
EVENT_HEADER = "F3D-Event"
SIGNATURE_HEADER = "F3D-Signature"
REPLAY_WINDOW_S = 300.0


class WebhookType(StrEnum):
    MODEL_PUBLISHED = "model.published"
    MODEL_DISABLED = "model.disabled"
    MODEL_UPDATED = "model.updated"  # status changed (not to disabled), or new viewer settings
    SUBSCRIPTION_ENDING = "subscription.ending"


class WebhookDelivery(Event, frozen=True, kw_only=True, tag="webhook.delivery/1"):
    """One event for one endpoint, waiting in ``WEBHOOKS`` until the endpoint accepts it."""

    delivery_id: str
    endpoint_id: str
    customer: str
    event: WebhookType
    created: Real
    data: dict[str, Any]


class WebhookBody(msgspec.Struct, frozen=True, kw_only=True):
    """What the customer's endpoint receives."""

    id: str  # the delivery id: the same on every retry
    type: WebhookType
    created: Real
    data: dict[str, Any]


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: str, header: str, body: bytes, now: float, window: float = REPLAY_WINDOW_S) -> bool:
    """A receiver's check: the signature matches and its time is within ``window`` of ``now``."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        ts = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - ts) > window:
        return False
    return hmac.compare_digest(signature(secret, ts, body), f"t={ts},v1={parts.get('v1', '')}")


# -- API bodies (f3d.api.webhooks.*, served by the catalog) ------------------------------------

Url = Annotated[str, msgspec.Meta(min_length=8, max_length=2000, pattern=r"^https?://")]


class EndpointAdd(msgspec.Struct, frozen=True, kw_only=True):
    customer: str
    url: Url
    actor: str = ""


class EndpointRef(msgspec.Struct, frozen=True, kw_only=True):
    endpoint_id: str
    actor: str = ""


class CustomerRef(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    customer: str = ""
    limit: Count = 100


class EndpointView(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    endpoint_id: str
    customer: str
    url: str
    created: Real
    created_by: str
    secret: str = ""  # only in the answer to ``add``: shown once


class DeliveryView(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One line of the delivery log."""

    delivery_id: str
    endpoint_id: str
    customer: str
    type: WebhookType
    created: Real
    state: str  # pending, delivered, failed
    attempts: Count
    last_status: int = 0  # the endpoint's last HTTP status (0: no answer)
    last_error: str = ""
    last_attempt: Real = 0.0
    delivered: Real = 0.0


WEBHOOK_ADD: Api[EndpointAdd, EndpointView] = Api("webhooks", "add", EndpointAdd, EndpointView)
WEBHOOK_REMOVE: Api[EndpointRef, EndpointView] = Api("webhooks", "remove", EndpointRef, EndpointView)
WEBHOOK_LIST: Api[CustomerRef, list[EndpointView]] = Api("webhooks", "list", CustomerRef, list[EndpointView])
WEBHOOK_DELIVERIES: Api[CustomerRef, list[DeliveryView]] = Api(
    "webhooks", "deliveries", CustomerRef, list[DeliveryView]
)

SCHEMAS: tuple[Any, ...] = (WebhookBody, EndpointAdd, EndpointRef, CustomerRef, EndpointView, DeliveryView)
