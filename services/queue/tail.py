"""Follow the JOB_EVENTS stream into the job table, in order, from where it stopped.

An ephemeral pull consumer (no acks) starts at the sequence after the last one
applied. A gap in the sequence (a message lost with a server), an unknown
consumer (its server died) or repeated errors recreate it from the last applied
sequence, which is what an "ordered consumer" does, but with a check we control
during cluster failover.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable

import msgspec
import nats.errors
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import FetchTimeoutError

from foto3d.libs.bus.connection import Bus
from foto3d.libs.tasks import cancel_and_wait
from foto3d.proto import subjects
from foto3d.proto.jobs import JobEvent
from foto3d.services.queue.store import JobStore

log = logging.getLogger(__name__)
STREAM = subjects.JOB_EVENTS_STREAM
_dec = msgspec.json.Decoder(JobEvent)

# Called after each applied batch with the job ids whose state changed; must not wait
# for the tail itself (it runs inside the tail's loop).
OnChange = Callable[[list[str]], Awaitable[None]]


class EventTail:
    def __init__(self, bus: Bus, store: JobStore, on_change: OnChange, name: str) -> None:
        self.bus = bus
        self.store = store
        self.on_change = on_change
        self.name = name
        self._cond = asyncio.Condition()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.recreated = 0
        self.undecodable = 0
        self._gap_at = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="queue:event-tail")

    async def stop(self) -> None:
        self._stop.set()
        await cancel_and_wait(self._task)

    async def wait_for(self, seq: int, timeout: float = 10.0) -> bool:
        """Wait until the event at stream sequence ``seq`` is applied (read-your-writes)."""
        if self.store.last_seq >= seq:
            return True
        try:
            async with asyncio.timeout(timeout):
                async with self._cond:
                    await self._cond.wait_for(lambda: self.store.last_seq >= seq)
            return True
        except TimeoutError:
            return False

    async def catch_up(self, timeout: float = 8.0) -> bool:
        """Wait until everything the stream holds now is applied."""
        try:
            info = await self.bus.js.stream_info(STREAM)
        except (TimeoutError, nats.errors.Error):
            return False
        return await self.wait_for(int(info.state.last_seq), timeout)

    async def _consumer(self) -> tuple[str, object]:
        name = f"queue-tail-{uuid.uuid4().hex[:10]}"
        cfg = ConsumerConfig(
            name=name,
            ack_policy=AckPolicy.NONE,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=self.store.last_seq + 1,
            filter_subject=subjects.JOB_EVENTS_ALL,
            inactive_threshold=30.0,
            mem_storage=True,
            num_replicas=1,
            max_ack_pending=-1,
        )
        await self.bus.js.add_consumer(STREAM, cfg)
        sub = await self.bus.js.pull_subscribe_bind(name, STREAM)
        return name, sub

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                name, sub = await self._consumer()
            except (TimeoutError, nats.errors.Error) as exc:
                log.info("job event tail: cannot create consumer yet (%r)", exc)
                await asyncio.sleep(0.5)
                continue
            try:
                await self._follow(name, sub)
            finally:
                try:
                    await sub.unsubscribe()  # type: ignore[attr-defined]
                except Exception:
                    pass
                try:
                    await self.bus.js.delete_consumer(STREAM, name)
                except Exception:
                    pass
            self.recreated += 1

    async def _follow(self, name: str, sub: object) -> None:
        reconnects = self.bus.reconnects
        while not self._stop.is_set():
            try:
                msgs = await sub.fetch(500, timeout=1.0)  # type: ignore[attr-defined]
            except (TimeoutError, FetchTimeoutError, nats.errors.TimeoutError):
                # Quiet, or our consumer died with its server: after a reconnect, or when the
                # server no longer knows it, start a new one (a standby must be current when
                # it takes over, so this is checked every second).
                if self.bus.reconnects != reconnects or not await self._alive(name):
                    return
                continue
            except nats.errors.Error as exc:
                log.info("job event tail: fetch failed (%r); recreating", exc)
                await asyncio.sleep(0.3)
                return
            batch: list[tuple[int, JobEvent | None]] = []
            gap = False
            expected = self.store.last_seq + 1
            for m in msgs:
                seq = int(m.metadata.sequence.stream)
                if seq < expected:
                    continue
                # A message before this one is missing: lost in flight with a server (a new
                # consumer from the last applied sequence brings it) or removed by the
                # stream's limits (the new consumer starts here again: accept the gap).
                if seq > expected and (batch or self._gap_at != seq):
                    self._gap_at = seq
                    gap = True
                    break
                try:
                    ev: JobEvent | None = _dec.decode(m.data)
                except (msgspec.ValidationError, msgspec.DecodeError):
                    self.undecodable += 1
                    ev = None
                batch.append((seq, ev))
                expected = seq + 1
            if batch:
                changed = await self.store.apply(batch)
                async with self._cond:
                    self._cond.notify_all()
                if changed:
                    try:
                        await self.on_change(changed)
                    except Exception:
                        log.exception("job event tail: reacting to changes failed")
            if gap:
                return

    async def _alive(self, name: str) -> bool:
        try:
            await asyncio.wait_for(self.bus.js.consumer_info(STREAM, name), 1.0)
            return True
        except (TimeoutError, nats.errors.Error):
            return False
