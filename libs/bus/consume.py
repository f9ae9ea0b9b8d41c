"""Typed pull consumers that acknowledge only after the work is durable.

A consumer fetches a batch, validates every message against its Struct type,
hands the good ones to the handler in one call, and acks them only when the
handler returns (the handler commits first). A message that does not decode is
published to the dead-letter stream with the reason and then terminated, so a
poison message is kept for inspection but never blocks the stream.

If the handler raises, the batch is retried one message at a time at once, so
the good messages of a batch are not held back by a bad one. A message that
still fails is nak'ed with a growing delay; once it has failed
``max_failures`` deliveries it goes to the dead-letter stream with the last
error as the reason and is terminated, so a message the handler can never
take (a value the store cannot hold) does not wedge the consumer. Failures of
the surroundings (disk full, database locked, connection lost) say nothing
about the message: those keep being retried, never dead-lettered, so the
backlog resumes by itself once the cause is gone.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import msgspec
import nats.errors
from nats.aio.msg import Msg
from nats.js.errors import FetchTimeoutError

from foto3d.libs.bus.connection import Bus
from foto3d.libs.bus.dead import dead_letter_message
from foto3d.libs.bus.topology import ConsumerSpec

log = logging.getLogger(__name__)
T = TypeVar("T")

# Deliveries a message may fail in the handler before it is dead-lettered.
DEFAULT_MAX_FAILURES = 5
# Redelivery delays double from retry_delay up to this.
MAX_RETRY_DELAY_S = 30.0
# Errors of the environment, not of the message: retried without limit.
ENVIRONMENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    ConnectionError,
    sqlite3.OperationalError,
    nats.errors.Error,
)


def is_environment_error(exc: BaseException) -> bool:
    return isinstance(exc, ENVIRONMENT_ERRORS)


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
    dead_lettered: int = 0
    # The last handler error; cleared by the next message handled, so health recovers.
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
    max_failures: int = DEFAULT_MAX_FAILURES
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

    def request_stop(self) -> None:
        """Stop after the batch in hand (``stop()`` also waits for that)."""
        self._stop.set()

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
                self.stats.malformed += 1
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
            self._note_error(exc)
            log.warning(
                "%s: handler failed for a batch of %d (%r); retrying one by one",
                self.spec.durable,
                len(good),
                exc,
            )
            if len(good) == 1:
                await self._failed(good[0], exc)
            else:
                await self._one_by_one(good)
            return
        for d in good:
            await _quiet(d.msg.ack())
        self._note_success(len(good))

    async def _one_by_one(self, good: list[Delivery[T]]) -> None:
        for d in good:
            try:
                await self.handler([d])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._note_error(exc)
                await self._failed(d, exc)
                continue
            await _quiet(d.msg.ack())
            self._note_success(1)

    def _note_error(self, exc: BaseException) -> None:
        self.stats.handler_errors += 1
        self.stats.last_error = repr(exc)

    def _note_success(self, n: int) -> None:
        self.stats.handled += n
        self.stats.last_error = ""

    async def _failed(self, d: Delivery[T], exc: BaseException) -> None:
        """One message failed in the handler: retry later, or dead-letter it after enough tries."""
        n = d.num_delivered
        # A consumer declared with a smaller MaxDeliver would never be redelivered the
        # max_failures-th time: its last delivery is then the last chance to keep it.
        limit = self.max_failures
        if self.spec.max_deliver > 0:
            limit = min(limit, self.spec.max_deliver)
        if n >= limit and not is_environment_error(exc):
            self.stats.dead_lettered += 1
            await self.dead_letter(d.msg, f"handler failed {n} times: {type(exc).__name__}: {exc}")
            # Kept in DEAD with its reason: the consumer is healthy again.
            self.stats.last_error = ""
            return
        if n == 1 and not is_environment_error(exc):
            log.exception("%s: message %s failed in the handler", self.spec.durable, d.stream_seq)
        else:
            log.warning("%s: message %s failed again (%d): %r", self.spec.durable, d.stream_seq, n, exc)
        delay = min(self.retry_delay * 2 ** max(n - 1, 0), MAX_RETRY_DELAY_S)
        await _quiet(d.msg.nak(delay=delay))

    async def dead_letter(self, m: Msg, reason: str) -> None:
        """Keep a message that cannot be processed, with why, then stop its redelivery."""
        await dead_letter_message(self.bus, m, reason, consumer=self.spec.durable, origin=self.spec.stream)


async def _quiet(aw: Awaitable[None]) -> None:
    try:
        await aw
    except (TimeoutError, nats.errors.Error) as exc:
        log.debug("ack/nak not sent: %r", exc)
