"""Which site the rig sends to: the first one in the configured order that is alive.

Each site gets its own connection (unlimited reconnects) and is probed every
``probe_interval_s`` with a JetStream account-info request: the site's heartbeat as the
rig sees it. A site is alive while its last answer is younger than ``site_grace_s``.
The rig stays on the site it uses while that one is alive; when it dies the next alive
site takes over at once, and an earlier (preferred) site is returned to once it has
answered continuously for ``failback_after_s`` (so a flapping link does not bounce).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

import nats.errors
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from foto3d.libs.rig.settings import RigSettings, SiteSettings
from foto3d.libs.tasks import cancel_and_wait
from foto3d.proto.rig import SiteState

log = logging.getLogger(__name__)


@dataclass
class SiteLink:
    config: SiteSettings
    nc: NATS | None = None
    js: JetStreamContext | None = None
    last_ok: float | None = None  # monotonic
    last_ok_wall: float | None = None
    alive_since: float | None = None  # monotonic start of the current run of answers
    latency_ms: float | None = None
    error: str | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    def alive(self, grace: float, now: float) -> bool:
        return self.last_ok is not None and now - self.last_ok <= grace

    def state(self, grace: float) -> SiteState:
        return SiteState(
            name=self.config.name,
            reachable=self.alive(grace, time.monotonic()),
            last_ok=self.last_ok_wall,
            latency_ms=self.latency_ms,
            error=self.error,
        )


async def _quiet(exc: Exception) -> None:
    # An unreachable site is the normal offline case, reported in the status, not a log error.
    log.debug("site connection: %s", exc)


class SitePicker:
    def __init__(self, settings: RigSettings, name: str) -> None:
        self.settings = settings
        self.name = name
        self.links = [SiteLink(s) for s in settings.sites]
        self.current: SiteLink | None = None
        self.changed = asyncio.Event()  # set whenever the choice or a site's health changes

    async def start(self) -> None:
        for link in self.links:
            link.task = asyncio.create_task(self._run(link), name=f"site-{link.config.name}")

    async def stop(self) -> None:
        await cancel_and_wait(*(link.task for link in self.links))
        for link in self.links:
            if link.nc is not None and not link.nc.is_closed:
                with contextlib.suppress(Exception):
                    await link.nc.close()

    def site_states(self) -> list[SiteState]:
        return [link.state(self.settings.site_grace_s) for link in self.links]

    async def _connect(self, link: SiteLink) -> None:
        delay = 0.2
        while True:
            nc = NATS()
            try:
                await nc.connect(
                    servers=link.config.nats_urls(),
                    name=self.name,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,  # type: ignore[arg-type]
                    connect_timeout=2,
                    allow_reconnect=True,
                    ping_interval=2,
                    max_outstanding_pings=2,
                    error_cb=_quiet,
                )
                link.nc, link.js = nc, nc.jetstream(timeout=self.settings.publish_timeout_s)
                return
            except (TimeoutError, nats.errors.NoServersError, OSError) as exc:
                link.error = f"cannot connect: {exc or type(exc).__name__}"
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.settings.probe_interval_s)

    async def _run(self, link: SiteLink) -> None:
        await self._connect(link)
        assert link.js is not None
        while True:
            started = time.monotonic()
            try:
                await link.js.account_info()
            except (nats.errors.Error, TimeoutError, OSError) as exc:
                link.error = str(exc) or type(exc).__name__
                link.alive_since = None
            else:
                now = time.monotonic()
                link.latency_ms = (now - started) * 1000
                link.last_ok, link.last_ok_wall = now, time.time()
                link.alive_since = link.alive_since or now
                link.error = None
            self._choose()
            await asyncio.sleep(self.settings.probe_interval_s)

    def report_failure(self, link: SiteLink, error: str) -> None:
        """A publish to ``link`` failed: count it as a missed heartbeat at once."""
        link.error = error
        link.last_ok = None
        link.alive_since = None
        self._choose()

    def _choose(self) -> None:
        now = time.monotonic()
        grace = self.settings.site_grace_s
        alive = [lk for lk in self.links if lk.alive(grace, now)]
        pick: SiteLink | None
        if self.current is not None and self.current in alive:
            pick = self.current
            # Fail back to a preferred site that has been steady for a while.
            for lk in alive:
                if self.links.index(lk) >= self.links.index(pick):
                    break
                if lk.alive_since is not None and now - lk.alive_since >= self.settings.failback_after_s:
                    pick = lk
                    break
        else:
            pick = alive[0] if alive else None
        if pick is not self.current:
            log.warning(
                "site %s -> %s",
                self.current.config.name if self.current else "none",
                pick.config.name if pick else "none",
            )
            self.current = pick
        self.changed.set()

    async def wait_for_site(self) -> SiteLink:
        while self.current is None:
            self.changed.clear()
            await self.changed.wait()
        return self.current
