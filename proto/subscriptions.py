"""Customer subscriptions: what a CRM sets, and what the catalog does when one ends.

A subscription belongs to a customer and optionally to one of its models. At its end the
catalog disables the models it covers (the same ``object.status/1`` event a manual disable
publishes, so the token gateway refuses them at once) and staff are mailed once before and
once when it happened.

A CRM (or staff) sets subscriptions over the bus: ``f3d.api.subscriptions.set``, which the
``crm`` role of :mod:`foto3d.proto.permissions` may call and nothing else. Each request
carries the CRM record's ``revision`` (any number that grows with every change, such as its
modification time in milliseconds): a request whose revision is not newer than the stored one
changes nothing, so replays and requests that arrive out of order are harmless.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import msgspec

from foto3d.proto.api import Api
from foto3d.proto.base import Count, Real
from foto3d.proto.rules import CustomerSlug

SubscriptionId = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]


class Requested(StrEnum):
    """What the CRM says about a subscription."""

    ACTIVE = "active"  # runs from start to end
    CANCELLED = "cancelled"  # ends now, whatever its end date said


class SubscriptionState(StrEnum):
    """What a subscription is now (the catalog's view, in replies and listings)."""

    SCHEDULED = "scheduled"  # starts later
    ACTIVE = "active"
    ENDED = "ended"  # its end was carried out: its models were disabled


class Outcome(StrEnum):
    """What a ``subscriptions.set`` request did."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"  # the same revision again (a replay): nothing to do
    STALE = "stale"  # an older revision than the stored one (arrived late): ignored


class SubscriptionSet(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Body of ``subscriptions.set``: create or change one subscription."""

    subscription_id: SubscriptionId  # the CRM's id of the contract
    customer: CustomerSlug
    start: Real
    end: Real
    revision: Annotated[int, msgspec.Meta(ge=1, le=2**53 - 1)]
    state: Requested = Requested.ACTIVE
    object_id: str = ""  # one model only; empty: every model of the customer
    actor: str = ""  # who changed it in the CRM (shown in the catalog's records)


class SubscriptionRef(msgspec.Struct, frozen=True, kw_only=True):
    subscription_id: str


class SubscriptionQuery(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    customer: str = ""  # empty: every customer


class SubscriptionView(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One subscription as the catalog holds it."""

    subscription_id: str
    customer: str
    start: Real
    end: Real
    revision: Count
    requested: Requested
    state: SubscriptionState
    updated: Real
    updated_by: str
    object_id: str = ""
    warned: bool = False  # the "ends soon" mail went out for this end
    ended_at: Real | None = None  # when its end was carried out


class SetReply(msgspec.Struct, frozen=True, kw_only=True):
    outcome: Outcome
    subscription: SubscriptionView


SUBSCRIPTION_SET: Api[SubscriptionSet, SetReply] = Api("subscriptions", "set", SubscriptionSet, SetReply)
SUBSCRIPTION_SHOW: Api[SubscriptionRef, SubscriptionView] = Api(
    "subscriptions", "show", SubscriptionRef, SubscriptionView
)
SUBSCRIPTION_LIST: Api[SubscriptionQuery, list[SubscriptionView]] = Api(
    "subscriptions", "list", SubscriptionQuery, list[SubscriptionView]
)

SCHEMAS: tuple[Any, ...] = (SubscriptionSet, SubscriptionRef, SubscriptionQuery, SubscriptionView, SetReply)
