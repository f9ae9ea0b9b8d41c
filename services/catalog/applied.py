"""How far this instance's copy of the catalog has read OBJECT_EVENTS.

A new leader must not open its write path before it has applied everything the old one
published (registration picks serials, customer-add checks for duplicates and reviews
check stages, all from the local copy), so it waits until the object consumer has
applied the stream's last sequence as of the moment it won the lease (the queue's
``tail.catch_up``).
"""

from __future__ import annotations

import asyncio
import contextlib

import nats.errors

from foto3d.libs.bus.connection import Bus
from foto3d.proto import subjects


class AppliedSequence:
    def __init__(self, bus: Bus, durable: str, stream: str = subjects.OBJECT_EVENTS_STREAM) -> None:
        self.bus = bus
        self.durable = durable
        self.stream = stream
        self.seq = 0
        self._cond = asyncio.Condition()

    async def load(self) -> None:
        """Start from what the consumer has acknowledged (everything before is applied)."""
        try:
            info = await self.bus.js.consumer_info(self.stream, self.durable)
        except (TimeoutError, nats.errors.Error):
            return
        if info.ack_floor is not None and info.ack_floor.stream_seq:
            await self.advance(int(info.ack_floor.stream_seq))

    async def advance(self, seq: int) -> None:
        if seq > self.seq:
            async with self._cond:
                self.seq = max(self.seq, seq)
                self._cond.notify_all()

    async def catch_up(self, timeout: float) -> bool:
        """Wait until every object event the stream holds now is applied here.

        Judged by the consumer's acknowledgement floor on the server, not by the highest
        sequence applied: a message this instance was handed before a restart and never
        acknowledged comes again only after the ack wait, behind later ones.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            info = await self.bus.js.stream_info(self.stream)
            last = int(info.state.last_seq)
            while True:
                mine = await self.bus.js.consumer_info(self.stream, self.durable)
                floor = int(mine.ack_floor.stream_seq or 0) if mine.ack_floor is not None else 0
                if floor >= last or (not mine.num_pending and not mine.num_ack_pending):
                    return True
                left = deadline - loop.time()
                if left <= 0:
                    return False
                # Woken by the next applied batch; the acknowledgement follows it shortly.
                with contextlib.suppress(TimeoutError):
                    async with self._cond:
                        await asyncio.wait_for(self._cond.wait(), min(0.2, left))
        except (TimeoutError, nats.errors.Error):
            return False
