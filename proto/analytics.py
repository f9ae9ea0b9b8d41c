"""Viewer analytics: the beacon a page sends, the deltas gateways share, and the staff API.

The viewer batches what happened on a page (a view, time to poster and to first frame, the
interactions, time in view, errors) and sends it once, on ``pagehide`` or when the page is
hidden, to ``POST /v1/beacon?key=pk_…`` on the customer listener. Nothing in it names a
person: no cookie, no user agent, no address (the gateway truncates the client's address for
its rate limit and never stores it). Each gateway instance sums beacons per customer, model,
domain, device class and day, and shares the sums as ``gateway.beacons/1`` deltas on the
usage stream, so every instance answers ``analytics`` with the totals of all of them.

First-frame and poster times are kept as sketches (counts per logarithmic bucket, each
bucket 10 % wider than the one below), not as samples: two sketches add up bucket by bucket,
so percentiles over days, domains or instances are as right as over one (within 5 %).
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from foto3d.proto.api import Api
from foto3d.proto.base import Count, Event
from foto3d.proto.rules import CustomerSlug, ObjectId

#: The most events one beacon may carry, and the largest beacon body, in bytes.
MAX_BEACON_EVENTS = 64
MAX_BEACON_BYTES = 8192
#: Times above this (ms) are not page loads any more; they are refused, not clamped.
MAX_MS = 600_000
#: Bucket indexes of a sketch: bucket i holds values in (γ^(i-1), γ^i] ms, γ = 1.1; index 0 is 0 ms.
MAX_SKETCH_INDEX = 200
#: The most days ``analytics`` reads back.
MAX_DAYS = 400

# A number, not only an integer: JSON Schema's "integer" admits 191.0, and so must a decoder
# that says it follows the schema; the gateway rounds.
Millis = Annotated[float, msgspec.Meta(ge=0, le=MAX_MS)]
DeviceClass = Literal["phone", "tablet", "desktop"]
InteractionKind = Literal["orbit", "zoom", "fullscreen"]
ErrorCode = Annotated[str, msgspec.Meta(pattern="^[a-z0-9_.-]{1,40}$")]


class _BeaconEvent(msgspec.Struct, frozen=True, tag_field="kind", forbid_unknown_fields=True):
    pass


class ViewEvent(_BeaconEvent, frozen=True, tag="view"):
    """The viewer was shown on a page (once per page load)."""


class PosterEvent(_BeaconEvent, frozen=True, tag="poster"):
    """The poster image was on screen ``ms`` after the page started."""

    ms: Millis


class FirstFrameEvent(_BeaconEvent, frozen=True, tag="first_frame"):
    """The first frame of the model was drawn ``ms`` after the page started."""

    ms: Millis


class InteractionEvent(_BeaconEvent, frozen=True, tag="interaction"):
    action: InteractionKind


class TimeInViewEvent(_BeaconEvent, frozen=True, tag="time_in_view"):
    """How long the viewer was visible on screen."""

    ms: Millis


class ErrorEvent(_BeaconEvent, frozen=True, tag="error"):
    code: ErrorCode


BeaconEvent = ViewEvent | PosterEvent | FirstFrameEvent | InteractionEvent | TimeInViewEvent | ErrorEvent


class Beacon(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``POST /v1/beacon?key=pk_…``: one page's events for one model.

    ``device`` is the page's own guess (screen size and pointer), the only thing about the
    visitor's device that is kept; without it the gateway guesses from the client hints."""

    object_id: ObjectId
    device: DeviceClass | None = None
    events: Annotated[list[BeaconEvent], msgspec.Meta(min_length=1, max_length=MAX_BEACON_EVENTS)]


class BeaconAccepted(msgspec.Struct, frozen=True, kw_only=True):
    accepted: Count


# ---------------------------------------------------------------------------
# Deltas between gateway instances (on the GATEWAY_USAGE stream)
# ---------------------------------------------------------------------------

Sketch = dict[Annotated[int, msgspec.Meta(ge=0, le=MAX_SKETCH_INDEX)], Count]


class BeaconCount(msgspec.Struct, frozen=True, kw_only=True):
    day: str  # YYYY-MM-DD, UTC
    customer: str
    object_id: str
    domain: str  # the page's host (and port), from its Origin
    device: DeviceClass
    views: Count = 0
    orbit: Count = 0
    zoom: Count = 0
    fullscreen: Count = 0
    time_in_view_ms: Count = 0
    errors: Count = 0
    poster: Sketch = msgspec.field(default_factory=dict)
    first_frame: Sketch = msgspec.field(default_factory=dict)


class BeaconDelta(Event, frozen=True, kw_only=True, tag="gateway.beacons/1"):
    """Beacon sums one gateway instance took since its previous delta (``delta_id`` = Nats-Msg-Id)."""

    delta_id: str
    instance: str
    counts: list[BeaconCount]


# ---------------------------------------------------------------------------
# The staff API (f3d.api.gateway.analytics)
# ---------------------------------------------------------------------------


class AnalyticsQuery(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    customer: CustomerSlug
    object_id: ObjectId | None = None
    days: Annotated[int, msgspec.Meta(ge=1, le=MAX_DAYS)] = 30  # up to and including today (UTC)


class Percentiles(msgspec.Struct, frozen=True, kw_only=True):
    count: Count
    p50: Count | None = None  # ms; None when nothing was measured
    p75: Count | None = None
    p95: Count | None = None


class AnalyticsRow(msgspec.Struct, frozen=True, kw_only=True):
    day: str  # "" in the total
    object_id: str
    domain: str
    device: str
    views: Count
    orbit: Count
    zoom: Count
    fullscreen: Count
    time_in_view_ms: Count
    errors: Count
    poster: Percentiles
    first_frame: Percentiles


class AnalyticsReply(msgspec.Struct, frozen=True, kw_only=True):
    rows: list[AnalyticsRow] = msgspec.field(default_factory=list)  # newest day first
    total: AnalyticsRow | None = None  # every row's counts, and the percentiles of all of them


ANALYTICS: Api[AnalyticsQuery, AnalyticsReply] = Api("gateway", "analytics", AnalyticsQuery, AnalyticsReply)

SCHEMAS = (Beacon, BeaconAccepted, AnalyticsQuery, AnalyticsReply)
