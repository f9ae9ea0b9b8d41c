"""The queue's figures for /metrics: jobs by state, and waiting jobs by priority.

Read from the job table before each scrape; every instance holds the full table (leader or
standby), so any of them answers the same.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from foto3d.libs.metrics import Metrics
from foto3d.proto.jobs import JobState, Priority
from foto3d.services.queue.store import JobStore


@dataclass
class QueueMetrics:
    store: JobStore
    by_state: dict[str, int] = field(default_factory=dict)
    # priority -> (queued jobs, the oldest one's created time)
    waiting: dict[str, tuple[int, float]] = field(default_factory=dict)
    measured_at: float = 0.0

    def install(self, metrics: Metrics) -> None:
        metrics.add_function("queue", self.collect)
        metrics.before_scrape("queue", self.refresh)

    async def refresh(self) -> None:
        self.by_state = await self.store.counts()
        self.waiting = await self.store.waiting_by_priority()
        self.measured_at = time.time()

    def collect(self) -> Iterable[Metric]:
        jobs = GaugeMetricFamily("f3d_queue_jobs", "jobs in the job table by state", labels=["state"])
        for state in JobState:
            jobs.add_metric([state.value], self.by_state.get(state.value, 0))
        yield jobs
        depth = GaugeMetricFamily("f3d_queue_depth", "queued jobs by priority", labels=["priority"])
        age = GaugeMetricFamily(
            "f3d_queue_oldest_age_seconds", "age of the oldest queued job by priority", labels=["priority"]
        )
        for prio in Priority:
            n, oldest = self.waiting.get(prio.value, (0, 0.0))
            depth.add_metric([prio.value], n)
            age.add_metric([prio.value], max(0.0, self.measured_at - oldest) if n else 0.0)
        yield depth
        yield age
