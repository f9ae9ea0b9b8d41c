"""One Prometheus registry per runtime, and the refreshers that run before each scrape.

``foto3d up`` runs many services in one process and ``foto3d serve`` runs one; either way
the runtime owns one :class:`Metrics` and hands it to every service through its
``ServiceContext``. A service adds collectors under a name of its own (adding again under
the same name replaces the old one, so a restarted service does not collide with its
former self) and, for figures that need I/O (a sqlite count, a JetStream info call),
registers an async refresher that updates what its collectors read. Collectors themselves
stay synchronous and cheap, as prometheus-client expects.

The process-wide default registry of prometheus-client is never used: two runtimes in one
process (tests) would share it, and library imports would register into it behind our back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

Refresher = Callable[[], Awaitable[None]]
# A refresher slower than this is skipped for the scrape: old figures beat a hung scrape.
REFRESH_TIMEOUT_S = 5.0


class FunctionCollector(Collector):
    """A collector whose metrics come from a plain function, read at scrape time."""

    def __init__(self, fn: Callable[[], Iterable[Metric]]) -> None:
        self.fn = fn

    def collect(self) -> Iterable[Metric]:
        return self.fn()


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._collectors: dict[str, Collector] = {}
        self._refreshers: dict[str, Refresher] = {}
        self.refresh_failures = 0
        # Stale figures must be visible: a refresher that fails leaves its last values.
        self.add_function("metrics", self._own)

    def _own(self) -> Iterable[Metric]:
        failures = CounterMetricFamily(
            "f3d_metrics_refresh_failures", "refreshers that failed or timed out before a scrape"
        )
        failures.add_metric([], self.refresh_failures)
        yield failures

    def add(self, name: str, collector: Collector) -> None:
        """Register ``collector`` under ``name``, replacing whatever was there."""
        self.remove(name)
        self.registry.register(collector)
        self._collectors[name] = collector

    def add_function(self, name: str, fn: Callable[[], Iterable[Metric]]) -> None:
        self.add(name, FunctionCollector(fn))

    def before_scrape(self, name: str, refresh: Refresher) -> None:
        self._refreshers[name] = refresh

    def remove(self, name: str) -> None:
        old = self._collectors.pop(name, None)
        if old is not None:
            self.registry.unregister(old)
        self._refreshers.pop(name, None)

    async def refresh(self) -> None:
        async def one(name: str, fn: Refresher) -> None:
            try:
                await asyncio.wait_for(fn(), REFRESH_TIMEOUT_S)
            except Exception as exc:
                # Debug only: a scrape every few seconds would flood the log (and the log server).
                self.refresh_failures += 1
                log.debug("metrics refresher %s failed: %r", name, exc)

        await asyncio.gather(*(one(n, f) for n, f in list(self._refreshers.items())))

    async def exposition(self) -> bytes:
        """The text format (version 0.0.4), with every refresher run first."""
        await self.refresh()
        return generate_latest(self.registry)
