"""Sign-in limits shared by every dashboard instance through the bus.

An instance applies its own checked attempts at once (the next request must see them), then
publishes them on ``f3d.auth.signin.<instance>`` (stream AUTH_SIGNIN); every instance follows
the stream from its start, so a new instance knows the locks already running and a guesser
cannot move on to another instance. The token gateway shares its bans the same way.

Without a bus (a page-only helper, a unit test) the limits are this process's alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import msgspec

from foto3d.libs.auth.throttle import SignInLimits
from foto3d.libs.bus.connection import Bus
from foto3d.libs.bus.follow import StreamFollower
from foto3d.libs.tasks import cancel_and_wait
from foto3d.proto import subjects
from foto3d.proto.auth import SignInEvent

log = logging.getLogger(__name__)


class SharedLimits:
    def __init__(self, limits: SignInLimits, bus: Bus | None, instance: str) -> None:
        self.limits = limits
        self.bus = bus
        self.instance = instance
        self.unshared = 0  # events the others never learnt (the bus refused them)
        self._own: set[str] = set()
        self._follower: StreamFollower | None = None
        self._sends: set[asyncio.Task[None]] = set()
        self._decoder = msgspec.json.Decoder(SignInEvent)

    async def start(self) -> None:
        if self.bus is None:
            return
        self._follower = StreamFollower(
            self.bus.js, subjects.AUTH_SIGNIN_STREAM, subjects.AUTH_SIGNIN_ALL, self._on_event
        )
        await self._follower.start(1)

    async def stop(self) -> None:
        if self._sends:
            await asyncio.wait(self._sends, timeout=5.0)
        await cancel_and_wait(*self._sends)
        if self._follower is not None:
            await self._follower.stop()
            self._follower = None

    async def _on_event(self, data: bytes, _seq: int) -> None:
        event = self._decoder.decode(data)
        attempt_id = getattr(event, "attempt_id", "")
        if attempt_id and attempt_id in self._own:
            self._own.discard(attempt_id)  # applied when it happened here
            return
        self.limits.apply(event)

    def record(self, event: SignInEvent) -> bool:
        """Apply an event here now and share it; True when it starts an incident (see
        :meth:`SignInLimits.apply`)."""
        incident = self.limits.apply(event)
        if self.bus is not None:
            attempt_id = getattr(event, "attempt_id", "")
            if attempt_id:
                self._own.add(attempt_id)
            self.spawn(self._share(event))
        return incident

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a publish in the background; :meth:`stop` waits for it (briefly)."""
        task = asyncio.create_task(coro, name="auth:publish")
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    async def _share(self, event: SignInEvent) -> None:
        assert self.bus is not None
        try:
            await self.bus.publish(subjects.auth_signin(self.instance), event, deadline=10.0)
        except Exception as exc:  # it holds here regardless; the other instances learn nothing
            self.unshared += 1
            log.warning("sign-in event not shared with the other dashboard instances: %r", exc)


class KeyedLocks:
    """One attempt at a time per account and per address on this instance, so a burst of parallel
    guesses cannot all pass the limit check before the first failure is counted."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, *keys: str) -> AsyncIterator[None]:
        ordered = sorted(set(keys))  # one order everywhere: no deadlock between two keys
        locks = []
        for k in ordered:
            lock, users = self._locks.get(k, (asyncio.Lock(), 0))
            self._locks[k] = (lock, users + 1)
            locks.append(lock)
        acquired: list[asyncio.Lock] = []
        try:
            for lock in locks:
                await lock.acquire()
                acquired.append(lock)
            yield
        finally:
            for lock in reversed(acquired):
                lock.release()
            for k in ordered:
                lock, users = self._locks[k]
                if users <= 1:
                    del self._locks[k]
                else:
                    self._locks[k] = (lock, users - 1)
