"""Beacons summed in memory per (day, customer, model, domain, device) and shared in batches.

A request only adds to a dict; a task publishes what was added as ``gateway.beacons/1``
deltas on the usage stream every ``beacon_flush_s``, and every instance (this one included)
folds the deltas into its sqlite (``store.apply_beacons``). So the request path never waits
on sqlite or the bus, and every instance answers with the totals of all of them.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field

from foto3d.libs.bus.connection import Bus
from foto3d.libs.tasks import cancel_and_wait
from foto3d.proto import subjects
from foto3d.proto.analytics import (
    BeaconCount,
    BeaconDelta,
    BeaconEvent,
    DeviceClass,
    ErrorEvent,
    FirstFrameEvent,
    InteractionEvent,
    PosterEvent,
    TimeInViewEvent,
    ViewEvent,
)
from foto3d.services.token_gateway import sketch
from foto3d.services.token_gateway.accesslog import utc_day

log = logging.getLogger(__name__)

#: Rows per delta message: a row's two sketches are at most a few hundred bytes each, so a
#: delta stays far below the bus's message limit.
ROWS_PER_DELTA = 500
#: Rows held between flushes; beyond, new rows are dropped (and counted) rather than memory grown.
MAX_ROWS = 200_000

Key = tuple[str, str, str, str, DeviceClass]  # day, customer, object, domain, device


@dataclass
class _Sums:
    views: int = 0
    orbit: int = 0
    zoom: int = 0
    fullscreen: int = 0
    time_in_view_ms: int = 0
    errors: int = 0
    poster: dict[int, int] = field(default_factory=dict)
    first_frame: dict[int, int] = field(default_factory=dict)

    def add(self, ev: BeaconEvent) -> None:
        if isinstance(ev, ViewEvent):
            self.views += 1
        elif isinstance(ev, FirstFrameEvent):
            sketch.add(self.first_frame, round(ev.ms))
        elif isinstance(ev, PosterEvent):
            sketch.add(self.poster, round(ev.ms))
        elif isinstance(ev, InteractionEvent):
            setattr(self, ev.action, getattr(self, ev.action) + 1)
        elif isinstance(ev, TimeInViewEvent):
            self.time_in_view_ms += round(ev.ms)
        elif isinstance(ev, ErrorEvent):
            self.errors += 1

    def merge(self, other: _Sums) -> None:
        self.views += other.views
        self.orbit += other.orbit
        self.zoom += other.zoom
        self.fullscreen += other.fullscreen
        self.time_in_view_ms += other.time_in_view_ms
        self.errors += other.errors
        sketch.merge(self.poster, other.poster)
        sketch.merge(self.first_frame, other.first_frame)

    def count(self, k: Key) -> BeaconCount:
        return BeaconCount(
            day=k[0],
            customer=k[1],
            object_id=k[2],
            domain=k[3],
            device=k[4],
            views=self.views,
            orbit=self.orbit,
            zoom=self.zoom,
            fullscreen=self.fullscreen,
            time_in_view_ms=self.time_in_view_ms,
            errors=self.errors,
            poster=self.poster,
            first_frame=self.first_frame,
        )


class BeaconSums:
    def __init__(self, bus: Bus, instance: str, flush_s: float) -> None:
        self.bus = bus
        self.instance = instance
        self.flush_s = flush_s
        self.dropped = 0  # rows refused because MAX_ROWS were waiting (the bus unreachable)
        self.events = 0  # events taken since start
        self._rows: dict[Key, _Sums] = {}
        self._task: asyncio.Task[None] | None = None
        self._flushing = asyncio.Lock()

    def add(
        self, customer: str, object_id: str, domain: str, device: DeviceClass, events: list[BeaconEvent]
    ) -> None:
        k: Key = (utc_day(time.time()), customer, object_id, domain, device)
        row = self._rows.get(k)
        if row is None:
            if len(self._rows) >= MAX_ROWS:
                self.dropped += 1
                return
            row = self._rows[k] = _Sums()
        for ev in events:
            row.add(ev)
        self.events += len(events)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="gateway-beacons")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
        await self.flush()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.flush_s)
            await self.flush()

    async def flush(self) -> None:
        """Publish what was added since the last flush; what the bus does not take is kept."""
        async with self._flushing:
            if not self._rows:
                return
            taken, self._rows = self._rows, {}
            items = list(taken.items())
            for start in range(0, len(items), ROWS_PER_DELTA):
                chunk = items[start : start + ROWS_PER_DELTA]
                delta = BeaconDelta(
                    delta_id=f"{self.instance}-{uuid.uuid4().hex}",
                    instance=self.instance,
                    counts=[s.count(k) for k, s in chunk],
                )
                try:
                    await self.bus.publish(
                        subjects.gateway_usage(self.instance), delta, msg_id=delta.delta_id, deadline=10.0
                    )
                except Exception as exc:  # keep the rest; they go out with the next flush
                    log.warning("beacon sums not shared (%d rows kept): %r", len(items) - start, exc)
                    for k, s in items[start:]:
                        self._rows.setdefault(k, _Sums()).merge(s)
                    return
