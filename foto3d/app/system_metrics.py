"""Figures no single service owns: free disk, stream fill and trainers alive.

The runtime adds these to its registry, so every process that serves ``/metrics`` reports
them; Prometheus keeps them apart by instance, and the dashboard takes the max.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from foto3d.libs.bus.connection import Bus
from foto3d.libs.bus.topology import Topology
from foto3d.libs.diskspace import DiskUsage, StreamFill, disk_usage, stream_fills
from foto3d.libs.heartbeat import current, read_heartbeats
from foto3d.libs.metrics import Metrics


@dataclass
class SystemMetrics:
    bus: Bus
    data_dir: Path
    topology: Topology
    disk: DiskUsage | None = None
    fills: list[StreamFill] = field(default_factory=list)
    trainers: dict[str, int] = field(default_factory=dict)

    def install(self, metrics: Metrics) -> None:
        metrics.add_function("system", self.collect)
        metrics.before_scrape("system", self.refresh)

    async def refresh(self) -> None:
        self.disk = await asyncio.to_thread(disk_usage, self.data_dir)
        self.fills = await stream_fills(self.bus.js, [s.name for s in self.topology.streams])
        try:
            seen, _ = await read_heartbeats(self.bus.js)
        except LookupError:
            seen = []
        states: dict[str, int] = {"alive": 0, "late": 0, "lost": 0}
        for s in current(seen):
            if s.beat.kind == "trainer" and not s.beat.stopping:
                states[s.state()] = states.get(s.state(), 0) + 1
        self.trainers = states

    def collect(self) -> Iterable[Metric]:
        if self.disk is not None:
            free = GaugeMetricFamily("f3d_disk_free_bytes", "free bytes on the data volume", labels=["path"])
            free.add_metric([str(self.data_dir)], self.disk.free)
            yield free
            total = GaugeMetricFamily("f3d_disk_total_bytes", "size of the data volume", labels=["path"])
            total.add_metric([str(self.data_dir)], self.disk.total)
            yield total
        used = GaugeMetricFamily("f3d_stream_bytes", "bytes stored in a JetStream stream", labels=["stream"])
        cap = GaugeMetricFamily("f3d_stream_max_bytes", "a stream's byte limit (-1: none)", labels=["stream"])
        msgs = GaugeMetricFamily("f3d_stream_messages", "messages in a JetStream stream", labels=["stream"])
        fill = GaugeMetricFamily(
            "f3d_stream_fill_ratio", "bytes over the byte limit (streams with one)", labels=["stream"]
        )
        for f in self.fills:
            used.add_metric([f.name], f.bytes)
            cap.add_metric([f.name], f.max_bytes)
            msgs.add_metric([f.name], f.messages)
            if f.fill_pct is not None:
                fill.add_metric([f.name], f.fill_pct / 100.0)
        yield from (used, cap, msgs, fill)
        trainers = GaugeMetricFamily(
            "f3d_trainers", "trainers by heartbeat state (alive, late, lost)", labels=["state"]
        )
        for state, n in sorted(self.trainers.items()):
            trainers.add_metric([state], n)
        yield trainers
