"""The queue's figures for /metrics: jobs by state, waiting jobs by priority, step durations.

Read from the job table before each scrape; every instance holds the full table (leader or
standby), so any of them answers the same.
"""

from __future__ import annotations

import math
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
    # step -> durations (seconds) of the jobs that finished within STEP_WINDOW_S
    steps: dict[str, list[float]] = field(default_factory=dict)

    def install(self, metrics: Metrics) -> None:
        metrics.add_function("queue", self.collect)
        metrics.before_scrape("queue", self.refresh)

    async def refresh(self) -> None:
        self.by_state = await self.store.counts()
        self.waiting = await self.store.waiting_by_priority()
        self.measured_at = time.time()
        self.steps = await step_durations(self.store, self.measured_at - STEP_WINDOW_S)

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
        steps = GaugeMetricFamily(
            "f3d_job_step_seconds",
            f"duration of a job's steps (wait: submitted to started; train: started to succeeded) over "
            f"the jobs finished in the last {STEP_WINDOW_S / 60:.0f} min",
            labels=["step", "quantile"],
        )
        finished = GaugeMetricFamily(
            "f3d_job_step_jobs", "jobs behind f3d_job_step_seconds, by step", labels=["step"]
        )
        for step in STEPS:
            values = sorted(self.steps.get(step, []))
            finished.add_metric([step], len(values))
            for q in QUANTILES:
                steps.add_metric([step, f"{q:g}"], quantile(values, q))
        yield steps
        yield finished


STEPS = ("wait", "train")
QUANTILES = (0.5, 0.95, 1.0)
STEP_WINDOW_S = 3600.0


def quantile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank quantile; 0 when nothing finished (an empty window is not a slow one)."""
    if not sorted_values:
        return 0.0
    rank = max(0, min(len(sorted_values) - 1, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[rank]


async def step_durations(store: JobStore, since: float) -> dict[str, list[float]]:
    """Wait and training time of the jobs that finished since ``since`` (read from the job table)."""
    async with store.db.execute(
        "SELECT started - created, finished - started, state FROM jobs "
        "WHERE finished >= ? AND started IS NOT NULL",
        (since,),
    ) as cur:
        rows = await cur.fetchall()
    out: dict[str, list[float]] = {"wait": [], "train": []}
    for wait, train, state in rows:
        out["wait"].append(max(0.0, float(wait)))
        if state == JobState.SUCCEEDED.value and train is not None:
            out["train"].append(max(0.0, float(train)))
    return out
