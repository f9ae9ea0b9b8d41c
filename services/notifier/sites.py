"""Who watches the watcher: each notifier announces its site on the bus and checks in outside it.

- **Site announcement.** A notifier with a ``site`` setting publishes a ``site`` heartbeat
  (id: the site's name) every ``site_beat`` seconds with grace ``site_grace``. Every
  notifier watches heartbeats, so when the last notifier of a site stops beating without a
  goodbye, the notifiers elsewhere raise "site X down"; the one holding the lease (or taking
  it over from the dead site) mails it, in the thread of that site's other silences.
- **Dead man's switch.** With ``checkin_url`` set, every instance requests that URL every
  ``checkin_every`` seconds while it is connected to the bus (Healthchecks, Uptime Kuma's
  push monitors and Cronitor all work this way): a service outside the system raises the
  alarm when the check-ins stop, which no process inside it can do once every site is dark.
  While the instance cannot deliver mail it requests ``<checkin_url>/fail`` instead
  (Healthchecks' failure signal), so "alerts do not go out" also reaches someone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from foto3d.libs.bus.connection import Bus
from foto3d.libs.tasks import cancel_and_wait

log = logging.getLogger(__name__)


@dataclass
class CheckInHealth:
    sent: int = 0
    failed: int = 0
    last_at: float | None = None
    last_error: str = ""


class CheckIn:
    """Requests the external heartbeat URL on a timer while this instance is of use."""

    def __init__(self, bus: Bus, url: str, every: float, failing: Callable[[], str | None]) -> None:
        self.bus = bus
        self.url = url.rstrip("/")
        self.every = every
        # Why this instance cannot deliver right now, or None.
        self.failing = failing
        self.health = CheckInHealth()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="notifier:checkin")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            while True:
                if self.bus.connected:
                    await self._check_in(http)
                await asyncio.sleep(self.every)

    async def _check_in(self, http: aiohttp.ClientSession) -> None:
        problem = self.failing()
        # A URL with a query (Uptime Kuma's ?status=up) has no failure path: it only stops.
        url = f"{self.url}/fail" if problem and "?" not in self.url else self.url
        try:
            async with http.get(url) as resp:
                if resp.status >= 400:
                    raise RuntimeError(f"HTTP {resp.status}")
            self.health.sent += 1
            self.health.last_at = time.time()
        except (aiohttp.ClientError, TimeoutError, RuntimeError) as exc:
            self.health.failed += 1
            self.health.last_error = f"{type(exc).__name__}: {exc}"
            # A warning, not an error: an error would raise an alert about the watchdog.
            log.warning("notifier: check-in with %s failed: %s", self.url, self.health.last_error)
