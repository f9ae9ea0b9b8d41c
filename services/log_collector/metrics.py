"""The log collector's figures for /metrics: records ingested (a counter: rate() gives the
ingest rate), duplicates, store errors, and the lag of its consumer on LOGS."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from foto3d.libs.bus.connection import Bus
from foto3d.libs.metrics import Metrics
from foto3d.services.log_collector.topology import STORE_LOGS


class CollectorFigures(Protocol):
    """What the service counts, as the collector reads it (the service's ``Counts``)."""

    stored: int
    duplicates: int
    batches: int
    store_errors: int


@dataclass
class LogCollectorMetrics:
    bus: Bus
    counts: Callable[[], CollectorFigures]
    db_bytes: Callable[[], int]
    lag: int | None = None

    def install(self, metrics: Metrics) -> None:
        metrics.add_function("log_collector", self.collect)
        metrics.before_scrape("log_collector", self.refresh)

    async def refresh(self) -> None:
        # Fresh at each scrape (the health page's lag is polled every few seconds).
        with contextlib.suppress(Exception):
            info = await self.bus.js.consumer_info(STORE_LOGS.stream, STORE_LOGS.durable)
            self.lag = int(info.num_pending or 0) + int(info.num_ack_pending or 0)

    def collect(self) -> Iterable[Metric]:
        c = self.counts()
        for name, help_text, value in (
            ("f3d_logs_ingested_records", "log records stored", c.stored),
            ("f3d_logs_duplicate_records", "log records dropped as already stored", c.duplicates),
            ("f3d_logs_ingested_batches", "log batches taken from the stream", c.batches),
            ("f3d_logs_store_errors", "failed store transactions", c.store_errors),
        ):
            m = CounterMetricFamily(name, help_text)
            m.add_metric([], value)
            yield m
        if self.lag is not None:
            lag = GaugeMetricFamily("f3d_logs_collector_lag_messages", "LOGS messages not yet stored")
            lag.add_metric([], self.lag)
            yield lag
        size = GaugeMetricFamily("f3d_logs_db_bytes", "size of the log store's files")
        size.add_metric([], self.db_bytes())
        yield size
