"""Follow a stream from a given sequence with an ordered push consumer, and know when caught up.

Ordered consumers are ephemeral and server-side flow-controlled; nats-py recreates them from
the last sequence seen after a reconnect, so following never skips or repeats a message.
A message that cannot be handled is logged and passed over: one bad event must not stop
a gateway from learning about the next status change.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.client import JetStreamContext

log = logging.getLogger(__name__)

Handler = Callable[[bytes, int], Awaitable[None]]  # (payload, stream sequence)


class StreamFollower:
    def __init__(self, js: JetStreamContext, stream: str, subject: str, handle: Handler) -> None:
        self.js = js
        self.stream = stream
        self.subject = subject
        self.handle = handle
        self.caught_up = asyncio.Event()
        self.last_seq = 0
        self.errors = 0
        self._target = 0
        self._sub: object | None = None

    async def last_stream_seq(self) -> int:
        info = await self.js.stream_info(self.stream)
        return int(info.state.last_seq)

    async def start(self, from_seq: int, timeout: float = 60.0) -> None:
        """Deliver every message from ``from_seq`` on; return once the ones stored now are handled."""
        self._target = await self.last_stream_seq()
        self.last_seq = from_seq - 1
        if self._target < from_seq:
            self.caught_up.set()
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE if from_seq > 1 else DeliverPolicy.ALL,
            opt_start_seq=from_seq if from_seq > 1 else None,
        )
        self._sub = await self.js.subscribe(
            self.subject, stream=self.stream, cb=self._on_msg, ordered_consumer=True, config=config
        )
        try:
            await asyncio.wait_for(self.caught_up.wait(), timeout)
        except TimeoutError:
            raise RuntimeError(
                f"reading stream {self.stream} did not catch up within {timeout:.0f} s "
                f"(at {self.last_seq} of {self._target})"
            ) from None

    async def _on_msg(self, msg: Msg) -> None:
        seq = msg.metadata.sequence.stream
        try:
            await self.handle(msg.data, seq)
        except Exception as exc:
            self.errors += 1
            log.warning("%s #%d could not be used, passed over: %r", self.stream, seq, exc)
        self.last_seq = seq
        if seq >= self._target:
            self.caught_up.set()

    async def stop(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            try:
                await sub.unsubscribe()  # type: ignore[attr-defined]
            except Exception:  # the connection is already closing; nothing left to release
                pass
