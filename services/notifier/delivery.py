"""The outbox sender: hands every pending message to its channel (``channels.py``) until accepted.

Guarantee: a message is marked sent only after the receiver accepted it (SMTP
250 to DATA, HTTP 2xx, JetStream PubAck, file renamed into place). If the
process dies between the accept and the mark, the message is sent again after
restart with the *same* Message-ID (and the bus event with the same
Nats-Msg-Id), so receivers can drop the duplicate. Temporary failures retry with
exponential backoff up to ``retry_max``; a permanent refusal (SMTP 5xx, HTTP
4xx other than 408/429) marks the row ``rejected`` with the reason.
The messages of one alert reach each target in order (a recovery never arrives
before its alert), and each e-mail recipient has a rate limit per hour: excess
mail waits (it is never dropped).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path

from foto3d.libs.bus.connection import Bus
from foto3d.libs.tasks import cancel_and_wait
from foto3d.services.notifier.channels import Channel, Permanent, channels_for
from foto3d.services.notifier.ledger import SentLedger
from foto3d.services.notifier.settings import NotifierConfig
from foto3d.services.notifier.store import OutboxRow, Store

log = logging.getLogger(__name__)
HOUR = 3600.0


@dataclass
class DeliveryHealth:
    sent: int = 0
    failures: int = 0
    rejected: int = 0
    # channel -> since when its deliveries fail (cleared by its next success)
    failing: dict[str, float] = field(default_factory=dict)
    last_error: str = ""

    @property
    def failing_since(self) -> float | None:
        return min(self.failing.values()) if self.failing else None

    last_sent_at: float | None = None
    waiting: int = 0


@dataclass
class OutboxSender:
    store: Store
    cfg: NotifierConfig
    bus: Bus
    outbox_dir: Path
    health: DeliveryHealth = field(default_factory=DeliveryHealth)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None
    _sent_log: dict[str, deque[float]] = field(default_factory=lambda: defaultdict(deque))
    _inflight: set[int] = field(default_factory=set)
    channels: dict[str, Channel] = field(default_factory=dict)
    # Set where several instances run: skip what another delivered, record what this one did.
    ledger: SentLedger | None = None

    async def start(self) -> None:
        self.channels = channels_for(self.cfg, self.bus, self.outbox_dir)
        self.outbox_dir.mkdir(parents=True, exist_ok=True)
        for name, channel in self.channels.items():
            if channel.rate_limited:
                for target, at in await self.store.sent_since(name, time.time() - HOUR):
                    self._sent_log[target].append(at)
        self._task = asyncio.create_task(self._run(), name="notifier:outbox")

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        if self._task:
            await cancel_and_wait(self._task)
            self._task = None
        for channel in self.channels.values():
            await channel.close()

    async def _run(self) -> None:
        sem = asyncio.Semaphore(self.cfg.section.send_concurrency)
        tasks: set[asyncio.Task[None]] = set()
        try:
            while True:
                self._wake.clear()
                next_at = await self._pass(sem, tasks)
                timeout = None if next_at is None else max(0.01, next_at - time.time())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout if timeout is not None else 5.0)
        finally:
            await cancel_and_wait(*tasks)

    async def _pass(self, sem: asyncio.Semaphore, tasks: set[asyncio.Task[None]]) -> float | None:
        """Start delivery of every due row, in order per target; return when to look again."""
        now = time.time()
        # A delivery that ends while the rows are being read has marked its row sent or
        # failed *after* the read was queued, so the row below is stale: taking it as due
        # would send it a second time. Such rows are skipped; the delivery's end wakes
        # another pass, which reads their new state.
        inflight_at_read = set(self._inflight)
        rows = await self.store.pending()
        self.health.waiting = len(rows)
        blocked: set[tuple[str, str, str]] = set()
        next_at: float | None = None
        start: list[OutboxRow] = []
        for row in rows:
            key = (row.channel, row.target, row.alert_id)
            if row.id in self._inflight or row.id in inflight_at_read:
                blocked.add(key)
                continue
            if key in blocked:
                continue
            if row.next_attempt_at > now:
                blocked.add(key)
                next_at = min(next_at or row.next_attempt_at, row.next_attempt_at)
                continue
            if self._is_rate_limited(row) and (until := self._rate_limited(row.target, now)) is not None:
                await self.store.postpone(row.id, until, "rate limit: waiting for the next slot")
                blocked.add(key)
                next_at = min(next_at or until, until)
                continue
            blocked.add(key)  # one in flight per alert and target keeps its messages in order
            self._inflight.add(row.id)
            if self._is_rate_limited(row):
                self._sent_log[row.target].append(now)
            start.append(row)
        payloads = await self.store.payloads([r.id for r in start])
        for row in start:
            row = dataclasses.replace(row, payload=payloads.get(row.id, b""))
            t = asyncio.create_task(self._deliver(sem, row))
            tasks.add(t)
            t.add_done_callback(tasks.discard)
        return next_at

    def _is_rate_limited(self, row: OutboxRow) -> bool:
        channel = self.channels.get(row.channel)
        return channel is not None and channel.rate_limited

    def _rate_limited(self, target: str, now: float) -> float | None:
        limit = self.cfg.section.rate_limit_per_hour
        if limit <= 0:
            return None
        sent = self._sent_log[target]
        while sent and sent[0] < now - HOUR:
            sent.popleft()
        if len(sent) < limit:
            return None
        return sent[0] + HOUR

    async def _deliver(self, sem: asyncio.Semaphore, row: OutboxRow) -> None:
        try:
            channel = self.channels.get(row.channel)
            async with sem if channel is None or channel.uses_slot else contextlib.nullcontext():
                try:
                    if self.ledger is not None and await self.ledger.was_sent(row.message_id):
                        log.info("outbox: %s was delivered by another instance", row.message_id)
                        await self.store.mark_sent(row.id)
                        return
                    await self._send(row)
                    if self.ledger is not None:
                        # Before the slot is freed: the next delivery starts only once this is known.
                        await self.ledger.note(row.message_id)
                except Permanent as exc:
                    self.health.rejected += 1
                    self.health.last_error = f"{row.channel} {row.target}: {exc}"
                    # A warning, not an error: an error would raise an alert about failing alerts.
                    log.warning("outbox: %s to %s refused for good: %s", row.channel, row.target, exc)
                    await self.store.mark_failed(row.id, str(exc), None)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self._forget_slot(row)
                    delay = min(self.cfg.section.retry_max, 0.5 * 2 ** min(row.attempts, 20))
                    delay *= random.uniform(0.8, 1.2)
                    err = f"{type(exc).__name__}: {exc}"
                    self.health.failures += 1
                    self.health.last_error = f"{row.channel} {row.target}: {err}"
                    self.health.failing.setdefault(row.channel, time.time())
                    log.warning(
                        "outbox: %s to %s failed (attempt %d), retry in %.1fs: %s",
                        row.channel,
                        row.target,
                        row.attempts + 1,
                        delay,
                        err,
                    )
                    await self.store.mark_failed(row.id, err, time.time() + delay)
                else:
                    await self.store.mark_sent(row.id)
                    self.health.sent += 1
                    self.health.last_sent_at = time.time()
                    self.health.failing.pop(row.channel, None)
        finally:
            self._inflight.discard(row.id)
            self.wake()

    def _forget_slot(self, row: OutboxRow) -> None:
        if self._is_rate_limited(row) and self._sent_log[row.target]:
            self._sent_log[row.target].pop()

    async def _send(self, row: OutboxRow) -> None:
        channel = self.channels.get(row.channel)
        if channel is None:
            raise Permanent(f"unknown channel {row.channel!r}")
        await channel.send(row)
