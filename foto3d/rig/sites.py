"""Which site the rig sends to: the first one in the configured order that is alive.

Each site gets its own connection (unlimited reconnects) and is probed every
``probe_interval_s`` with a JetStream account-info request: the site's heartbeat as the
rig sees it. A site is alive while its last answer is younger than ``site_grace_s``.
The rig stays on the site it uses while that one is alive; when it dies the next alive
site takes over at once, and an earlier (preferred) site is returned to once it has
answered continuously for ``failback_after_s`` (so a flapping link does not bounce).

A probe that fails for any reason is a missed answer, never the end of the probing: a
site link must come back by itself however its connection broke. A client that has
closed for good (nats-py closes instead of reconnecting after some errors) or that has
not answered for ``RENEW_AFTER_GRACES`` grace periods is replaced by a fresh one, since
a reconnect that stalls inside the client would otherwise keep the site dead forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from foto3d.libs.bus.tls import client_context
from foto3d.libs.tasks import cancel_and_wait
from foto3d.proto.rig import SiteState
from foto3d.rig.settings import RigSettings, SiteSettings

log = logging.getLogger(__name__)
RENEW_AFTER_GRACES = 5
RENEW_AFTER_MIN_S = 10.0
CLOSE_TIMEOUT_S = 2.0


@dataclass
class SiteLink:
    config: SiteSettings
    nc: NATS | None = None
    js: JetStreamContext | None = None
    last_ok: float | None = None  # monotonic
    last_ok_wall: float | None = None
    alive_since: float | None = None  # monotonic start of the current run of answers
    connected_at: float | None = None  # monotonic time the current client was made
    answered_at: float | None = None  # monotonic time of the last answer (kept by report_failure)
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


async def _close(nc: NATS | None) -> None:
    """Close a site client; one whose connection is broken may not even manage that."""
    if nc is None or nc.is_closed:
        return
    with contextlib.suppress(Exception):
        await asyncio.wait_for(nc.close(), CLOSE_TIMEOUT_S)


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
        # Mutual TLS with the sites when the rig has a certificate (docs/security.md).
        s = settings
        self._tls = (
            client_context(Path(s.tls_ca), Path(s.tls_cert), Path(s.tls_key))
            if s.tls_ca and s.tls_cert and s.tls_key
            else None
        )

    async def start(self) -> None:
        for link in self.links:
            link.task = asyncio.create_task(self._run(link), name=f"site-{link.config.name}")

    def tasks(self) -> list[asyncio.Task[None]]:
        """The probing tasks, for the agent to notice if one ever ends."""
        return [link.task for link in self.links if link.task is not None]

    async def stop(self) -> None:
        await cancel_and_wait(*(link.task for link in self.links))
        for link in self.links:
            await _close(link.nc)

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
                    nkeys_seed=self.settings.creds,
                    tls=self._tls,
                )
                link.nc, link.js = nc, nc.jetstream(timeout=self.settings.publish_timeout_s)
                link.connected_at = time.monotonic()
                return
            except Exception as exc:  # unreachable, refused, a broken handshake: try again later
                link.error = f"cannot connect: {exc or type(exc).__name__}"
                await _close(nc)
                self._choose()
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.settings.probe_interval_s)

    def _needs_new_client(self, link: SiteLink, now: float) -> bool:
        if link.nc is None or link.nc.is_closed:
            return True
        silent_since = max(link.answered_at or 0.0, link.connected_at or 0.0)
        renew_after = max(RENEW_AFTER_MIN_S, RENEW_AFTER_GRACES * self.settings.site_grace_s)
        return now - silent_since > renew_after

    async def _run(self, link: SiteLink) -> None:
        while True:
            if self._needs_new_client(link, time.monotonic()):
                if link.nc is not None:
                    log.warning("site %s: no answer on its connection; connecting anew", link.config.name)
                old, link.nc, link.js = link.nc, None, None
                await _close(old)
                await self._connect(link)
            await self._probe(link)
            self._choose()
            await asyncio.sleep(self.settings.probe_interval_s)

    async def _probe(self, link: SiteLink) -> None:
        started = time.monotonic()
        try:
            assert link.js is not None
            await link.js.account_info()
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            # nats-py cancels the requests in flight when its client closes.
            self._missed(link, "the connection closed")
        except Exception as exc:  # whatever broke, it is a missed answer (see the module doc)
            self._missed(link, str(exc) or type(exc).__name__)
        else:
            now = time.monotonic()
            link.latency_ms = (now - started) * 1000
            link.last_ok, link.last_ok_wall, link.answered_at = now, time.time(), now
            link.alive_since = link.alive_since or now
            link.error = None

    @staticmethod
    def _missed(link: SiteLink, error: str) -> None:
        link.error = error
        link.alive_since = None

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
