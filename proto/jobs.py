"""Training jobs: submissions, the work message, and the events of the job state machine.

States: queued -> running (progress) -> succeeded | failed; a failed attempt is
retried (back to queued) until ``max_attempts``, then dead. cancelled ends it.
Events are published on ``f3d.jobs.events.<job_id>`` (stream JOB_EVENTS).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import msgspec

from foto3d.proto.base import Event

ObjectId = Annotated[
    str, msgspec.Meta(min_length=5, max_length=80, pattern=r"^[a-z0-9]+(-[a-z0-9]+)*-\d{3,}$")
]
JobId = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


class Priority(StrEnum):
    NORMAL = "normal"
    VIP = "vip"


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DEAD = "dead"
    CANCELLED = "cancelled"


TERMINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.DEAD, JobState.CANCELLED})


class TrainOptions(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Options from the capture UI; ranges are validated at decode time."""

    steps: Annotated[int, msgspec.Meta(ge=100, le=1_000_000)] = 30_000
    reduce: bool = True
    reduce_keep: Annotated[float, msgspec.Meta(gt=0.0, le=1.0)] = 0.5
    # Prune + fine-tune rounds with nerfstudio (the old method, now optional). 0 = prune only.
    reduce_iterations: Annotated[int, msgspec.Meta(ge=0, le=10)] = 0
    sh_degree: Annotated[int, msgspec.Meta(ge=0, le=3)] = 3
    formats: list[str] = msgspec.field(default_factory=lambda: ["ply", "spz"])
    process_data: bool | None = None  # None = decide from the dataset (raw images or not)


class SubmitRequest(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Body of ``f3d.jobs.submit`` (request/reply and the SUBMISSIONS stream)."""

    object_id: ObjectId
    dataset: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
    priority: Priority = Priority.NORMAL
    options: TrainOptions = msgspec.field(default_factory=TrainOptions)
    submitted_by: str = ""
    # Rigs set this so a resend after a lost reply is recognised as the same submission.
    request_id: str | None = None


class SubmitReply(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    ok: bool
    job_id: str | None = None
    duplicate: bool = False
    state: JobState | None = None
    error: str | None = None


class WorkItem(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One attempt of a job on the WORK stream (``f3d.work.train.<priority>``)."""

    job_id: JobId
    object_id: ObjectId
    dataset: str
    attempt: int
    options: TrainOptions
    priority: Priority = Priority.NORMAL
    traceparent: str | None = None


class Artifact(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    kind: str  # "splat", "config", "thumbnail", "log"
    format: str  # "ply", "spz", "splat", "compressed.ply", "sog", "yml", "png"
    uri: str
    bytes: int
    sha256: str
    gaussians: int | None = None


class StepTiming(msgspec.Struct, frozen=True, kw_only=True):
    step: str
    seconds: float


class JobEventBase(Event, frozen=True, kw_only=True, omit_defaults=True):
    job_id: JobId
    object_id: ObjectId
    ts: float
    attempt: int = 1
    actor: str = ""


class JobQueued(JobEventBase, frozen=True, kw_only=True, tag="job.queued/1"):
    dataset: str
    priority: Priority
    options: TrainOptions


class JobStarted(JobEventBase, frozen=True, kw_only=True, tag="job.started/1"):
    trainer: str
    host: str


class JobProgress(JobEventBase, frozen=True, kw_only=True, tag="job.progress/1"):
    stage: str
    step: int = 0
    total: int = 0
    eta_s: float | None = None


class JobSucceeded(JobEventBase, frozen=True, kw_only=True, tag="job.succeeded/1"):
    artifacts: list[Artifact]
    metrics: dict[str, float] = msgspec.field(default_factory=dict)
    timings: list[StepTiming] = msgspec.field(default_factory=list)


class JobFailed(JobEventBase, frozen=True, kw_only=True, tag="job.failed/1"):
    error: str
    step: str = ""
    will_retry: bool = False
    retry_in_s: float | None = None


class JobRetried(JobEventBase, frozen=True, kw_only=True, tag="job.retried/1"):
    reason: str = ""


class JobDead(JobEventBase, frozen=True, kw_only=True, tag="job.dead/1"):
    error: str


class JobCancelled(JobEventBase, frozen=True, kw_only=True, tag="job.cancelled/1"):
    reason: str = ""


JobEvent = (
    JobQueued | JobStarted | JobProgress | JobSucceeded | JobFailed | JobRetried | JobDead | JobCancelled
)

SCHEMAS = (SubmitRequest, SubmitReply, WorkItem)
