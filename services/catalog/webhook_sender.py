"""Sends the queued webhook deliveries: a durable consumer of ``WEBHOOKS``, a few at a time.

A delivery stays in the stream until its endpoint answers 2xx; any other answer, a refused
connection or a time-out puts it back with a growing delay (``nak`` with a delay, so it waits
on the server, not in this process's memory), until ``give_up_after_s`` after it was made;
then it is dropped and logged as failed. A restart loses nothing: what was not acknowledged
is delivered again. Each attempt is signed with the time it is made.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import aiohttp
import msgspec
import nats.errors
from nats.aio.msg import Msg
from nats.js.client import JetStreamContext
from nats.js.errors import FetchTimeoutError

from foto3d.libs.bus.connection import Bus
from foto3d.libs.bus.topology import ConsumerSpec
from foto3d.proto.webhooks import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    WebhookBody,
    WebhookDelivery,
    signature,
)
from foto3d.services.catalog.settings import WebhookSettings
from foto3d.services.catalog.webhook_book import DELIVERED, FAILED, PENDING, WebhookBook

log = logging.getLogger(__name__)
_decoder = msgspec.json.Decoder(WebhookDelivery)
_encoder = msgspec.json.Encoder()


def backoff(attempt: int, cfg: WebhookSettings) -> float:
    """Seconds before the next try after ``attempt`` tries: doubling from ``retry_initial_s``."""
    return float(min(cfg.retry_max_s, cfg.retry_initial_s * 2 ** max(attempt - 1, 0)))


class WebhookSender:
    def __init__(self, book: WebhookBook, bus: Bus, cfg: WebhookSettings, spec: ConsumerSpec) -> None:
        self.book = book
        self.bus = bus
        self.cfg = cfg
        self.spec = spec
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="catalog:webhooks")

    def request_stop(self) -> None:
        """End after the fetch in hand (``stop()`` also waits for that)."""
        self._stopping.set()

    async def stop(self) -> None:
        # The fetch loop ends by itself (a cancelled fetch would strand what it had pulled
        # until the ack wait ran out); attempts under way hand their deliveries back.
        self._stopping.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None

    async def _run(self) -> None:
        sub = await self.bus.js.pull_subscribe_bind(self.spec.durable, self.spec.stream)
        try:
            await self._deliver(sub)
        finally:
            # Without this the subscription outlives the sender, and the connection's drain
            # at shutdown waits for its leftovers (a pull request's late status reply that
            # nobody will read) until nats-py's drain timeout: 30 s on every catalog stop.
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _deliver(self, sub: JetStreamContext.PullSubscription) -> None:
        timeout = aiohttp.ClientTimeout(total=self.cfg.timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            while not self._stopping.is_set():
                free = self.cfg.concurrency - len(self._inflight)
                if free <= 0:
                    await asyncio.wait(self._inflight, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
                    continue
                try:
                    msgs = await sub.fetch(free, timeout=1.0)
                except (TimeoutError, FetchTimeoutError, nats.errors.TimeoutError):
                    continue
                except nats.errors.Error as exc:
                    log.warning("webhooks: fetch failed: %r", exc)
                    await asyncio.sleep(0.5)
                    continue
                for m in msgs:
                    task = asyncio.create_task(self._one(http, m))
                    self._inflight.add(task)
                    task.add_done_callback(self._inflight.discard)
            tasks = list(self._inflight)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _one(self, http: aiohttp.ClientSession, m: Msg) -> None:
        try:
            await self._attempt(http, m)
        except asyncio.CancelledError:
            # Stopping: hand the delivery back now rather than after the consumer's ack wait.
            with contextlib.suppress(Exception):
                await asyncio.shield(m.nak())
            raise
        except Exception as exc:  # the log or the bus failed: try again later, never drop it
            log.warning("webhooks: attempt failed: %r", exc)
            with contextlib.suppress(Exception):
                await m.nak(delay=self.cfg.retry_max_s)

    async def _attempt(self, http: aiohttp.ClientSession, m: Msg) -> None:
        try:
            d = _decoder.decode(m.data)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            log.error("webhooks: dropping a malformed delivery: %s", exc)
            await m.term()
            return
        # Queued by another instance (the leader before a takeover): its log row starts here.
        await self.book.logged(d.delivery_id, d.endpoint_id, d.customer, d.event.value, d.created)
        ep = await self.book.endpoint(d.endpoint_id)
        if ep is None or ep["removed"] is not None:
            await self.book.attempted(d.delivery_id, 0, "endpoint removed", FAILED)
            await m.ack()
            return
        body = _encoder.encode(WebhookBody(id=d.delivery_id, type=d.event, created=d.created, data=d.data))
        headers = {
            "Content-Type": "application/json",
            DELIVERY_HEADER: d.delivery_id,
            EVENT_HEADER: d.event.value,
            SIGNATURE_HEADER: signature(ep["secret"], int(time.time()), body),
        }
        status, error = 0, ""
        try:
            async with http.post(ep["url"], data=body, headers=headers, allow_redirects=False) as r:
                status = r.status
                await r.content.read(4096)  # the answer's body is not ours to keep
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            error = repr(exc)[:300]
        if 200 <= status < 300:
            await self.book.attempted(d.delivery_id, status, "", DELIVERED)
            await m.ack()
            return
        error = error or f"HTTP {status}"
        if time.time() - d.created > self.cfg.give_up_after_s:
            log.warning(
                "webhooks: giving up %s to %s after %s: %s", d.delivery_id, ep["url"], d.created, error
            )
            await self.book.attempted(d.delivery_id, status, error, FAILED)
            await m.ack()
            return
        await self.book.attempted(d.delivery_id, status, error, PENDING)
        await m.nak(delay=backoff(m.metadata.num_delivered, self.cfg))
