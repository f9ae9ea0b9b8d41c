"""Take work from the WORK stream: VIP first, then normal, one message at a time.

Each trainer binds to the durable pull consumers ``trainer-vip`` and
``trainer-normal``. A short fetch on VIP comes before a longer one on normal, so
a VIP job waits at most one normal fetch (about a second) behind the queue.
"""

from __future__ import annotations

import asyncio
import logging

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import FetchTimeoutError

from foto3d.services.trainer.topology import NORMAL_WORK, VIP_WORK

log = logging.getLogger(__name__)


_IDLE = (TimeoutError, FetchTimeoutError, nats.errors.TimeoutError)
_AWAY = (nats.errors.ConnectionClosedError, nats.errors.ConnectionReconnectingError)


class WorkSource:
    def __init__(self, js: JetStreamContext, vip_wait: float = 0.2, normal_wait: float = 1.0) -> None:
        self.js = js
        self.vip_wait = vip_wait
        self.normal_wait = normal_wait
        self._subs: list[tuple[str, float, JetStreamContext.PullSubscription]] = []

    async def open(self) -> None:
        for spec, wait in ((VIP_WORK, self.vip_wait), (NORMAL_WORK, self.normal_wait)):
            sub = await self.js.pull_subscribe_bind(spec.durable, spec.stream)
            self._subs.append((spec.durable, wait, sub))

    async def next(self) -> Msg | None:
        """One message, VIP first; None when nothing came within one round of fetches."""
        for durable, wait, sub in self._subs:
            try:
                msgs = await sub.fetch(1, timeout=wait)
            except _IDLE:
                continue
            except _AWAY:
                await asyncio.sleep(0.5)
                return None
            except nats.errors.Error as exc:
                log.warning("fetch from %s failed: %r", durable, exc)
                await asyncio.sleep(0.5)
                return None
            if msgs:
                return msgs[0]
        return None

    async def close(self) -> None:
        for _, _, sub in self._subs:
            try:
                await sub.unsubscribe()
            except Exception:
                pass
        self._subs.clear()
