"""The notifier's figures for /metrics: open alerts by severity and kind, mails by state."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from foto3d.libs.metrics import Metrics
from foto3d.services.notifier.store import Store

# Always reported, even at zero, so an alert rule on "rejected" has a series to read.
OUTBOX_STATES = ("pending", "sent", "rejected")


@dataclass
class NotifierMetrics:
    store: Store
    open_alerts: dict[tuple[str, str], int] = field(default_factory=dict)
    outbox: dict[str, int] = field(default_factory=dict)

    def install(self, metrics: Metrics) -> None:
        metrics.add_function("notifier", self.collect)
        metrics.before_scrape("notifier", self.refresh)

    async def refresh(self) -> None:
        counts: dict[tuple[str, str], int] = {}
        for a in await self.store.open_alerts():
            counts[(a.severity, a.kind)] = counts.get((a.severity, a.kind), 0) + 1
        self.open_alerts = counts
        self.outbox = await self.store.outbox_counts()

    def collect(self) -> Iterable[Metric]:
        alerts = GaugeMetricFamily("f3d_alerts_open", "open alerts", labels=["severity", "kind"])
        for (severity, kind), n in sorted(self.open_alerts.items()):
            alerts.add_metric([severity, kind], n)
        yield alerts
        mails = GaugeMetricFamily("f3d_mails", "mails in the outbox by state", labels=["state"])
        for state in sorted(set(OUTBOX_STATES) | set(self.outbox)):
            mails.add_metric([state], self.outbox.get(state, 0))
        yield mails
