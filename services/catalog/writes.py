"""Where the catalog's write commands run: here while this instance holds the writer lease,
else on the holder, over the bus.

Every command that changes something (customer-add, register, capture, review, status,
publish, resubmit, rollback, and the subscription and webhook books the leader's timers
act on) is registered here once with its API and its handler. The micro endpoints and
the HTTP API both call :meth:`WriteRoute.run`; a standby sends the same request body to
``to_catalog_leader(api)``, which only the leader subscribes to, and only once it
has caught up with the object events (``open_here``). While no instance leads, a write is
refused with a readable 503 at once (after the bus's short no-responders grace).

A forwarded write whose leader dies before answering ends when the lease shows another
holder (or this instance takes it), not after the whole forward timeout: the answer is the
same 503 "try again", and it is not sent again to the new leader by itself, because the dead
leader may have carried it out (a registration sent twice would make two objects).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec
import nats.errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from foto3d.libs.bus.connection import Bus
from foto3d.libs.bus.micro import Endpoint, plain_handler, serve
from foto3d.libs.tasks import cancel_and_wait
from foto3d.proto.api import Api, ServiceError
from foto3d.proto.objects import to_catalog_leader
from foto3d.services.catalog.actions import ActionError

log = logging.getLogger(__name__)
Q = TypeVar("Q", bound=msgspec.Struct)
R = TypeVar("R")
Handler = Callable[[Any], Awaitable[Any]]

NO_LEADER = "no catalog leader reachable right now (a failover takes up to 10 s); try again"
# Seconds a write waits for this instance's own write path while it is taking over.
OPENING_WAIT_S = 10.0
# How often a forwarded write looks at the lease while it waits for the leader's answer
# (the lease itself is read about once a second by a standby).
LEADER_WATCH_S = 0.25


class WriteRoute:
    def __init__(self, bus: Bus, forward_timeout_s: float = 15.0) -> None:
        self.bus = bus
        self.forward_timeout_s = forward_timeout_s
        self._commands: dict[str, tuple[Api[Any, Any], Handler, float]] = {}
        # Whether this instance holds the writer lease, and who holds it as far as this
        # instance knows (the service points both at its lease).
        self.leading: Callable[[], bool] = lambda: True
        self.leader: Callable[[], str | None] = lambda: None
        # Set while it leads and has applied every object event the stream held when it won
        # the lease: only then does it run writes and answer the standbys' forwarded ones.
        self._open = asyncio.Event()
        self._subs: list[Subscription] = []
        self._answering: set[asyncio.Task[None]] = set()
        self.forwarded = 0

    def add(
        self, api: Api[Q, R], handler: Callable[[Q], Awaitable[R]], timeout_s: float | None = None
    ) -> None:
        """Register a write command (once per API); ``timeout_s`` bounds a forwarded call."""
        self._commands[api.subject] = (api, handler, timeout_s or self.forward_timeout_s)

    def serve(self, api: Api[Q, R], handler: Callable[[Q], Awaitable[R]], **kw: Any) -> Endpoint:
        """The micro endpoint of a command that runs on the leader (``add`` + ``routed``)."""
        self.add(api, handler)
        return serve(api, self.routed(api), **kw)

    def routed(self, api: Api[Q, R]) -> Callable[[Q], Awaitable[R]]:
        """The handler to serve ``api`` with: runs the command where the lease says."""

        async def run(body: Q) -> R:
            return await self.run(api, body)

        return run

    @property
    def is_open(self) -> bool:
        return self._open.is_set()

    async def opened(self) -> None:
        await self._open.wait()

    async def run(self, api: Api[Q, R], body: Q) -> R:
        _, handler, timeout_s = self._commands[api.subject]
        if self.leading():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._open.wait(), OPENING_WAIT_S)
            if self.leading() and self._open.is_set():
                result: R = await handler(body)
                return result
        if self._open.is_set():
            # Lost the lease while waiting: the write path closes in a moment; not here.
            raise ActionError(NO_LEADER, 503)
        try:
            reply: R = await self._forward(api, body, timeout_s)
        except (TimeoutError, nats.errors.NoRespondersError, nats.errors.TimeoutError):
            raise ActionError(NO_LEADER, 503) from None
        except ServiceError as exc:
            if exc.description == NO_LEADER:
                raise ActionError(NO_LEADER, 503) from None
            # The leader's refusal, with the HTTP status it would have answered itself.
            self.forwarded += 1
            raise ActionError(exc.description, int(exc.code) if exc.code.isdigit() else 502) from None
        self.forwarded += 1
        return reply

    async def _forward(self, api: Api[Q, R], body: Q, timeout_s: float) -> R:
        """The leader's answer, or ``TimeoutError`` once the lease names someone else."""
        asked = self.leader()
        asking = self.bus.request(to_catalog_leader(api), body, api.reply, timeout=timeout_s)
        if asked is None:  # nobody known to wait for: only the timeout ends it
            reply: R = await asking
            return reply
        request = asyncio.create_task(asking)
        watch = asyncio.create_task(self._leader_changed(asked))
        try:
            await asyncio.wait((request, watch), return_when=asyncio.FIRST_COMPLETED)
        finally:
            # (Also when the caller is cancelled: neither task may outlive this call.)
            await cancel_and_wait(watch, *([] if request.done() else [request]))
        if request.cancelled():
            log.info("catalog: %s forwarded to %s, which lost the lease before answering", api.subject, asked)
            raise TimeoutError
        reply = request.result()
        return reply

    async def _leader_changed(self, asked: str) -> None:
        while True:
            holder = self.leader()
            if self.leading() or (holder is not None and holder != asked):
                return
            await asyncio.sleep(LEADER_WATCH_S)

    async def open_here(self) -> None:
        """Start answering the standbys' forwarded writes (this instance leads and caught up)."""
        self._open.set()
        for api, _, _ in self._commands.values():
            self._subs.append(await self.bus.nc.subscribe(to_catalog_leader(api), cb=self._forwarded(api)))

    async def close_here(self) -> None:
        self._open.clear()
        subs, self._subs = self._subs, []
        for sub in subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def stop_answering(self) -> None:
        """End the forwarded writes still being answered (the service is stopping)."""
        await cancel_and_wait(*self._answering)

    def _forwarded(self, api: Api[Any, Any]) -> Callable[[Msg], Awaitable[None]]:
        _, handler, _ = self._commands[api.subject]

        async def here(body: Any) -> Any:
            # Never forwarded again: a leader that just stepped down says so instead.
            if not (self.leading() and self._open.is_set()):
                raise ActionError(NO_LEADER, 503)
            return await handler(body)

        answer = plain_handler(api, here)

        async def on_msg(msg: Msg) -> None:
            # Each in its own task: a subscription's callbacks run one at a time, and a
            # forwarded publish waits minutes for its upload.
            async def run() -> None:
                await answer(msg)

            task = asyncio.create_task(run(), name=f"forwarded:{api.subject}")
            self._answering.add(task)
            task.add_done_callback(self._answering.discard)

        return on_msg
