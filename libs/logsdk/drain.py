"""Replays log batches that ended processes left in a host's spool.

A shipper replays the spool whenever it is online with something to send, but a
process that ended during an outage leaves its batches behind, and nobody might
log on that host for a long time. ``foto3d up`` runs a :class:`SpoolDrainer` over
the host's spool folder so those batches arrive without a person.

Batches are published with their batch id as ``Nats-Msg-Id``, exactly as the
shipper would, so a live shipper replaying the same file at the same moment
costs a duplicate that JetStream drops. Per source the order is kept: a batch
that cannot be sent (or is still being written) holds back the later ones.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import nats.errors

from foto3d.libs.bus.connection import Bus
from foto3d.libs.logsdk.spool import Spool
from foto3d.proto import subjects

log = logging.getLogger(__name__)

DRAIN_INTERVAL_S = 5.0
# A batch this young probably belongs to a live shipper, which replays it itself.
MIN_AGE_S = 5.0


@dataclass
class DrainStats:
    batches: int = 0
    records: int = 0
    last_error: str = ""


@dataclass
class SpoolDrainer:
    spool_dir: Path
    bus: Bus
    interval_s: float = DRAIN_INTERVAL_S
    min_age_s: float = MIN_AGE_S
    stats: DrainStats = field(default_factory=DrainStats)

    async def run(self) -> None:
        while True:
            await self.drain_once()
            await asyncio.sleep(self.interval_s)

    async def drain_once(self) -> int:
        """Publish every old enough batch, oldest first per source; returns how many were sent."""
        spool = await asyncio.to_thread(Spool, self.spool_dir, 1 << 62)
        entries = await asyncio.to_thread(spool.entries)
        held: set[tuple[str, str]] = set()
        sent = 0
        now = time.time()
        for e in entries:
            key = (e.source_kind, e.source_id)
            if key in held:
                continue
            try:
                young = now - e.path.stat().st_mtime < self.min_age_s
            except FileNotFoundError:
                continue  # replayed by its shipper meanwhile
            if young:
                held.add(key)
                continue
            data = await asyncio.to_thread(spool.read, e)
            if data is None:
                continue
            try:
                await self.bus.js.publish(
                    subjects.logs(e.source_kind, e.source_id), data, headers={"Nats-Msg-Id": e.batch_id}
                )
            except (TimeoutError, nats.errors.Error) as exc:
                self.stats.last_error = repr(exc)
                held.add(key)
                continue
            await asyncio.to_thread(spool.remove, e)
            sent += 1
            self.stats.batches += 1
            self.stats.records += e.records
        if sent:
            log.info("replayed %d log batch(es) left in %s by ended processes", sent, self.spool_dir)
        return sent
