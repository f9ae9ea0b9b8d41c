"""`up` watches the data volume and the streams' fill, so a full disk is seen before it bites.

The figures go into ``/healthz`` (component ``disk``). Crossing a threshold ships one
ERROR record (the notifier mails it, like any error); going back below it ships an
INFO record. The record is sent while there is still room to send it: that is what
the thresholds are for.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from foto3d.app.embedded_nats import EmbeddedNats
from foto3d.libs.bus.connection import Bus
from foto3d.libs.bus.topology import MiB, Topology
from foto3d.libs.diskspace import (
    DiskSettings,
    DiskUsage,
    Finding,
    StreamFill,
    disk_usage,
    judge,
    stream_fills,
)
from foto3d.libs.logsdk.service_logs import ALREADY_SHIPPED
from foto3d.libs.logsdk.shipper import LogShipper, safe_source_id
from foto3d.libs.service import Health
from foto3d.proto.logs import Level

log = logging.getLogger(__name__)
CHECK_EVERY_S = 5.0
# Free space that counts as "room again" even while below the alert threshold.
ROOM_TO_RESUME = 64 * MiB


def jetstream_max_storage(monitor_url: str) -> int:
    """The bytes nats-server allows JetStream on its store (75% of the free disk by default)."""
    with urllib.request.urlopen(monitor_url.rstrip("/") + "/varz", timeout=5) as r:
        varz: dict[str, Any] = json.loads(r.read())
    return int(varz.get("jetstream", {}).get("config", {}).get("max_storage") or 0)


@dataclass
class DiskWatch:
    cfg: DiskSettings
    data_dir: Path
    bus: Bus
    topology: Topology
    nats_urls: list[str]
    shipper: LogShipper | None = None
    interval_s: float = CHECK_EVERY_S
    disk: DiskUsage | None = None
    fills: list[StreamFill] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    alerts_sent: int = 0
    # The embedded server, when `up` runs one: restarted once space is back if its streams
    # failed to write meanwhile (they stay failed until then).
    nats: EmbeddedNats | None = None
    nats_restarts: int = 0

    async def run(self) -> None:
        while True:
            try:
                await self.check()
            except Exception:
                log.exception("checking disk space failed")
            await asyncio.sleep(self.interval_s)

    async def check(self) -> None:
        self.disk = await asyncio.to_thread(disk_usage, self.data_dir)
        names = [s.name for s in self.topology.streams if s.max_bytes > 0]
        self.fills = await stream_fills(self.bus.js, names)
        found = judge(self.cfg, self.disk, self.fills)
        before = {f.key for f in self.findings}
        now = {f.key for f in found}
        for f in found:
            if f.key not in before:
                log.error("%s", f.text, extra=ALREADY_SHIPPED)
                self._record(Level.ERROR, f.text)
                self.alerts_sent += 1
        for f in self.findings:
            if f.key not in now:
                text = f"resolved: {f.text.split(',')[0]} is back within its threshold"
                log.info("%s", text, extra=ALREADY_SHIPPED)
                self._record(Level.INFO, text)
        self.findings = found
        await self._resume_streams(found)

    async def _resume_streams(self, found: list[Finding]) -> None:
        nats = self.nats
        if nats is None or not nats.running or self.disk is None:
            return
        room = self.disk.free >= ROOM_TO_RESUME or not any(f.key == "disk" for f in found)
        if room and await asyncio.to_thread(nats.write_failed):
            await nats.restart("its streams failed to write while the disk was full; there is room again")
            self.nats_restarts += 1
            self._record(
                Level.WARNING, "the disk has room again: restarted the embedded nats-server to resume"
            )

    def _record(self, level: int, text: str) -> None:
        if self.shipper is None:
            source = safe_source_id(f"disk.{socket.gethostname()}")
            self.shipper = LogShipper("service", source, data_dir=self.data_dir, nats_urls=self.nats_urls)
        self.shipper.emit(int(level), text, logger="foto3d.disk")

    def health(self) -> Health:
        if self.disk is None:
            return Health("starting", "not measured yet")
        streams = {f.name: round(f.fill_pct, 1) for f in self.fills if f.fill_pct is not None}
        extra = {
            "free_bytes": self.disk.free,
            "total_bytes": self.disk.total,
            "free_pct": round(self.disk.free_pct, 1),
            "stream_fill_pct": streams,
            "thresholds": {
                "warn_free_pct": self.cfg.warn_free_pct,
                "warn_free_mb": self.cfg.warn_free_mb,
                "warn_stream_pct": self.cfg.warn_stream_pct,
            },
        }
        if self.findings:
            return Health("degraded", "; ".join(f.text for f in self.findings), extra)
        fullest = max(streams.items(), key=lambda kv: kv[1], default=None)
        detail = f"{self.disk.free / MiB:.0f} MiB free ({self.disk.free_pct:.0f}%)"
        if fullest:
            detail += f"; fullest stream {fullest[0]} {fullest[1]:.0f}%"
        return Health("ok", detail, extra)

    async def close(self) -> None:
        if self.shipper is not None:
            await asyncio.to_thread(self.shipper.close, 5.0)
