"""``analytics``: the viewer's beacons as staff read them, per day, model, domain and device,
with a total whose percentiles are those of every row's sketch added together."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from foto3d.proto.analytics import (
    AnalyticsQuery,
    AnalyticsReply,
    AnalyticsRow,
    BeaconCount,
    Percentiles,
)
from foto3d.services.token_gateway import sketch
from foto3d.services.token_gateway.store import BEACON_COUNTS, GatewayStore

QUANTILES = (0.50, 0.75, 0.95)


def percentiles(s: dict[int, int]) -> Percentiles:
    p50, p75, p95 = sketch.quantiles(s, QUANTILES)
    return Percentiles(count=sum(s.values()), p50=p50, p75=p75, p95=p95)


def _row(c: BeaconCount) -> AnalyticsRow:
    return AnalyticsRow(
        day=c.day,
        object_id=c.object_id,
        domain=c.domain,
        device=c.device,
        views=c.views,
        orbit=c.orbit,
        zoom=c.zoom,
        fullscreen=c.fullscreen,
        time_in_view_ms=c.time_in_view_ms,
        errors=c.errors,
        poster=percentiles(c.poster),
        first_frame=percentiles(c.first_frame),
    )


def _total(counts: list[BeaconCount]) -> AnalyticsRow:
    sums = dict.fromkeys(BEACON_COUNTS, 0)
    poster: dict[int, int] = {}
    first_frame: dict[int, int] = {}
    for c in counts:
        for col in BEACON_COUNTS:
            sums[col] += getattr(c, col)
        sketch.merge(poster, c.poster)
        sketch.merge(first_frame, c.first_frame)
    return AnalyticsRow(
        day="",
        object_id="",
        domain="",
        device="",
        **sums,
        poster=percentiles(poster),
        first_frame=percentiles(first_frame),
    )


async def analytics(store: GatewayStore, q: AnalyticsQuery) -> AnalyticsReply:
    since = (datetime.now(UTC) - timedelta(days=q.days - 1)).strftime("%Y-%m-%d")
    counts = await store.beacon_rows(q.customer, since, q.object_id)
    return AnalyticsReply(rows=[_row(c) for c in counts], total=_total(counts) if counts else None)
