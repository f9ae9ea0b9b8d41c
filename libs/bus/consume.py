"""Typed pull consumers that acknowledge only after the work is durable.

A consumer fetches a batch, validates every message against its Struct type,
hands the good ones to the handler in one call, and acks them only when the
handler returns (the handler commits first). A message that does not decode is
published to the dead-letter stream with the reason and then terminated, so a
poison message is kept for inspection but never blocks the stream. If the
handler raises, the batch is nak'ed with a delay and comes back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import msgspec
import nats.errors
from nats.aio.msg import Msg
from nats.js.errors import FetchTimeoutError

from foto3d.libs.bus.connection import Bus
from foto3d.libs.bus.topology import ConsumerSpec
from foto3d.proto import subjects

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class Delivery(Generic[T]):
    """One decoded message and what is needed to keep it alive or inspect it."""

    event: T
    msg: Msg

    @property
    def subject(self) -> str:
        return self.msg.subject

    @property
    def headers(self) -> Mapping[str, str]:
        return self.msg.headers or {}

    @property
    def num_delivered(self) -> int:
        return int(self.msg.metadata.num_delivered)

    @property
    def stream_seq(self) -> int:
        return int(self.msg.metadata.sequence.stream)


@dataclass
class ConsumerStats:
    received: int = 0
    handled: int = 0
    malformed: int = 0
    handler_errors: int = 0
    last_error: str = ""


Handler = Callable[[list[Delivery[T]]], Awaitable[None]]
Decoder = Callable[[bytes, Mapping[str, str]], T]


@dataclass
class PullConsumer(Generic[T]):
    bus: Bus
    spec: ConsumerSpec
    decode: Decoder[T]
    handler: Handler[T]
    batch: int = 256
    fetch_timeout: float = 1.0
    retry_delay: float = 2.0
    stats: ConsumerStats = field(default_factory=ConsumerStats)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    @classmethod
    def for_type(
        cls, bus: Bus, spec: ConsumerSpec, tp: type[T] | Any, handler: Handler[T], **kw: Any
    ) -> PullConsumer[T]:
        dec = msgspec.json.Decoder(tp)

        def decode(data: bytes, _headers: Mapping[str, str]) -> T:
            return dec.decode(data)  # type: ignore[no-any-return]

        return cls(bus=bus, spec=spec, decode=decode, handler=handler, **kw)

    def start(self) -> asyncio.Task[None]:
        self._task = asyncio.create_task(self.run(), name=f"consumer:{self.spec.durable}")
        return self._task

    async def stop(self) -> None:
        self._stop.set()
        if self._task:
            await self._task

    async def run(self) -> None:
        sub = await self.bus.js.pull_subscribe_bind(self.spec.durable, self.spec.stream)
        try:
            while not self._stop.is_set():
                try:
                    msgs = await sub.fetch(self.batch, timeout=self.fetch_timeout)
                except (TimeoutError, FetchTimeoutError, nats.errors.TimeoutError):
                    continue
                except (nats.errors.ConnectionClosedError, nats.errors.ConnectionReconnectingError):
                    await asyncio.sleep(0.5)
                    continue
                except nats.errors.Error as exc:
                    log.warning("%s: fetch failed: %r", self.spec.durable, exc)
                    await asyncio.sleep(0.5)
                    continue
                await self._process(msgs)
        finally:
            try:
                await sub.unsubscribe()
            except Exception:
                pass

    async def _process(self, msgs: list[Msg]) -> None:
        self.stats.received += len(msgs)
        good: list[Delivery[T]] = []
        for m in msgs:
            try:
                event = self.decode(m.data, m.headers or {})
            except (msgspec.ValidationError, msgspec.DecodeError, ValueError) as exc:
                await self.dead_letter(m, f"malformed: {exc}")
                continue
            good.append(Delivery(event=event, msg=m))
        if not good:
            return
        try:
            await self.handler(good)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.stats.handler_errors += 1
            self.stats.last_error = repr(exc)
            log.exception("%s: handler failed; %d messages will be redelivered", self.spec.durable, len(good))
            for d in good:
                await _quiet(d.msg.nak(delay=self.retry_delay))
            return
        for d in good:
            await _quiet(d.msg.ack())
        self.stats.handled += len(good)

    async def dead_letter(self, m: Msg, reason: str) -> None:
        """Keep a message that cannot be processed, with why, then stop its redelivery."""
        self.stats.malformed += 1
        meta = m.metadata
        headers = {
            "F3D-Reason": reason[:1000],
            "F3D-Original-Subject": m.subject,
            "F3D-Consumer": self.spec.durable,
            "Nats-Msg-Id": f"{meta.stream}:{meta.sequence.stream}",
        }
        try:
            await self.bus.publisher.publish_bytes(
                subjects.dead(meta.stream or self.spec.stream), m.data, headers=headers, deadline=None
            )
        except Exception:
            stub = msgspec.json.encode({"reason": reason, "bytes": len(m.data), "subject": m.subject})
            await self.bus.publisher.publish_bytes(
                subjects.dead(meta.stream or self.spec.stream), stub, headers=headers, deadline=None
            )
        log.warning(
            "%s: dead-lettered message %s on %s: %s",
            self.spec.durable,
            meta.sequence.stream,
            m.subject,
            reason,
        )
        await _quiet(m.term())


async def _quiet(aw: Awaitable[None]) -> None:
    try:
        await aw
    except (TimeoutError, nats.errors.Error) as exc:
        log.debug("ack/nak not sent: %r", exc)
