"""Forward one rig-local stream to the chosen site, in order, exactly once.

Messages are read from the rig's server by sequence number from the cursor on and
handed, one at a time, to a handler that delivers them to the current site and
returns once the site has acknowledged. One message in flight keeps the order exact:
a message that failed is retried (on the same or the next site) before any later one.
The cursor is saved after each window of acknowledged messages, then forwarded
messages are purged from the rig.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import nats.errors
from nats.js import JetStreamContext
from nats.js.api import RawStreamMsg
from nats.js.errors import NotFoundError

from foto3d.rig.outbox import Cursor
from foto3d.rig.sites import SiteLink, SitePicker

log = logging.getLogger(__name__)
READ_AHEAD = 64
PURGE_EVERY = 256


class SiteUnavailable(Exception):
    """Delivery to this site failed for a reason that another try (or site) may fix."""


class RetryLater(Exception):
    """Delivery failed for a reason on the way (e.g. the store); retry the same message after a pause."""

    def __init__(self, message: str, delay: float) -> None:
        super().__init__(message)
        self.delay = delay


Handler = Callable[[SiteLink, RawStreamMsg], Awaitable[None]]
# After this many failed tries of one message the operator is told (once per message).
REPORT_AFTER_TRIES = 3


class StreamForwarder:
    def __init__(
        self,
        leaf_js: JetStreamContext,
        stream: str,
        cursor: Cursor,
        sites: SitePicker,
        handle: Handler,
        on_stuck: Callable[[str, str], None] | None = None,
    ) -> None:
        self.leaf_js = leaf_js
        self.stream = stream
        self.cursor = cursor
        self.sites = sites
        self.handle = handle
        self.on_stuck = on_stuck  # (site name, error): a message keeps failing at a reachable site
        self.wake = asyncio.Event()
        self.caught_up = asyncio.Event()
        self.waiting = 0
        self.forwarded = 0
        self._purged_to = 0

    async def run(self) -> None:
        while True:
            try:
                await self._step()
            except (nats.errors.Error, TimeoutError) as exc:
                # The rig's own server is restarting or overloaded: nothing moved past the
                # cursor, so the same messages are read again once it answers.
                log.warning("%s: the rig's server did not answer (%s); retrying", self.stream, exc)
                self.caught_up.clear()
                await asyncio.sleep(1.0)

    async def _step(self) -> None:
        """Forward one window of messages, or wait a little when there is nothing to send."""
        info = await self.leaf_js.stream_info(self.stream)
        first, last = info.state.first_seq, info.state.last_seq
        if self.cursor.seq > last:
            # The rig's store was replaced (a new disk): its sequence numbers start again.
            log.warning(
                "%s: cursor %d is past the stream's end %d; starting over",
                self.stream,
                self.cursor.seq,
                last,
            )
            self.cursor.reset()
            self._purged_to = 0
        start = max(self.cursor.seq + 1, first)
        self.waiting = max(0, last - start + 1) if info.state.messages else 0
        if start > last:
            self.caught_up.set()
            await self._purge()
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), 1.0)
            except TimeoutError:
                pass
            return
        self.caught_up.clear()
        end = min(last, start + READ_AHEAD - 1)
        msgs = await asyncio.gather(*(self._get(seq) for seq in range(start, end + 1)))
        for seq, msg in zip(range(start, end + 1), msgs, strict=True):
            if msg is not None:
                await self._deliver(msg)
                self.forwarded += 1
            self.waiting = max(0, last - seq)
        self.cursor.save(end)
        if self.cursor.seq - self._purged_to >= PURGE_EVERY:
            await self._purge()

    async def refresh_waiting(self) -> int:
        """Messages on the rig not yet acknowledged by a site (also while delivery is stuck offline)."""
        info = await self.leaf_js.stream_info(self.stream)
        if info.state.messages == 0:
            self.waiting = 0
        else:
            self.waiting = max(0, info.state.last_seq - max(self.cursor.seq, info.state.first_seq - 1))
        return self.waiting

    async def _get(self, seq: int) -> RawStreamMsg | None:
        try:
            return await self.leaf_js.get_msg(self.stream, seq, direct=True)
        except NotFoundError:
            return None  # removed by the stream's size cap; reported by the caller's stats

    async def _deliver(self, msg: RawStreamMsg) -> None:
        delay = 0.2
        tries = 0
        while True:
            site = await self.sites.wait_for_site()
            try:
                await self.handle(site, msg)
                return
            except SiteUnavailable as exc:
                log.info("%s seq %s: site %s unavailable: %s", self.stream, msg.seq, site.config.name, exc)
                tries += 1
                if tries == REPORT_AFTER_TRIES and self.on_stuck is not None:
                    self.on_stuck(site.config.name, str(exc))
                self.sites.report_failure(site, str(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
            except RetryLater as exc:
                log.info("%s seq %s: %s; retrying in %.0f s", self.stream, msg.seq, exc, exc.delay)
                await asyncio.sleep(exc.delay)

    async def _purge(self) -> None:
        if self.cursor.seq > self._purged_to:
            await self.leaf_js.purge_stream(self.stream, seq=self.cursor.seq + 1)
            self._purged_to = self.cursor.seq
