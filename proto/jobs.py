"""Training jobs: submissions, the work message, and the events of the job state machine.

States: queued -> running (progress) -> succeeded | failed; a failed attempt is
retried (back to queued) until ``max_attempts``, then dead. cancelled ends it.
Events are published on ``f3d.jobs.events.<job_id>`` (stream JOB_EVENTS).
"""

from __future__ import annotations

import hashlib
import re
from enum import StrEnum
from typing import Annotated, Literal

import msgspec

from foto3d.proto.api import API_PREFIX, Api
from foto3d.proto.base import Count, Event, Real
from foto3d.proto.rules import ObjectId, readable

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


#: Splat file formats, one spelling each (the registry in ``libs/splat/formats`` declares them;
#: a test keeps the two equal). ``proto`` depends on nothing, so the set is spelled out here.
SplatFormatName = Literal["ply", "compressed-ply", "splat", "spz", "sog"]
#: Up axes a splat's data can use: x, -x, y, -y, z, -z. The one notion of a file's up axis,
#: from ``Artifact.up`` through ``PublishedFile.up`` and ``viewer.json`` to the gateway's
#: ``files[].up``: the axis that is up in the file's coordinates *as stored*, which is how a
#: renderer that reads the file unchanged sees it.
UpAxis = Literal["x", "-x", "y", "-y", "z", "-z"]


#: Fraction of the gaussians a reduction keeps when nobody says otherwise: the measured
#: recommendation for publishing (docs/splat.md, "Reduction and quality"). The one default for
#: every entry point: submissions, the rig SDK, ``foto3d splat reduce`` and ``reduce_splat``.
DEFAULT_KEEP = 0.5
#: SH degree of a job submitted without options (``foto3d submit``, the dashboard, a resubmission
#: of such a job): everything nerfstudio trained, so the reviewer judges the full colour detail
#: and staff lower it on purpose.
DEFAULT_SH_DEGREE = 3
#: SH degree the rig SDK asks for instead (``Reduction.sh_degree``): a capture rig submits for
#: publishing, and degree 1 is the measured recommendation for web delivery (docs/splat.md: most
#: of the look at a fraction of the bytes). The difference is deliberate; both are named here.
PUBLISH_SH_DEGREE = 1


Steps = Annotated[int, msgspec.Meta(ge=100, le=1_000_000)]
Keep = Annotated[float, msgspec.Meta(gt=0.0, le=1.0)]
ReduceIterations = Annotated[int, msgspec.Meta(ge=0, le=10)]
ShDegree = Annotated[int, msgspec.Meta(ge=0, le=3)]


class TrainOptions(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Options from the capture UI; ranges are validated at decode time."""

    steps: Steps = 30_000
    reduce: bool = True
    reduce_keep: Keep = DEFAULT_KEEP
    # Prune + fine-tune rounds with nerfstudio (the old method, now optional). 0 = prune only.
    reduce_iterations: ReduceIterations = 0
    sh_degree: ShDegree = DEFAULT_SH_DEGREE
    formats: list[SplatFormatName] = msgspec.field(default_factory=lambda: ["ply", "spz"])
    process_data: bool | None = None  # None = decide from the dataset (raw images or not)


class TrainOverrides(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Some of a job's ``TrainOptions``, each bounded as there; a field left out (None) keeps
    the value it changes (a resubmission: the last job's)."""

    steps: Steps | None = None
    reduce: bool | None = None
    reduce_keep: Keep | None = None
    reduce_iterations: ReduceIterations | None = None
    sh_degree: ShDegree | None = None

    def over(self, base: TrainOptions) -> TrainOptions:
        """``base`` with the fields set here replaced."""
        changed = {k: v for k, v in msgspec.structs.asdict(self).items() if v is not None}
        return msgspec.structs.replace(base, **changed)


class SubmitRequest(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Body of ``f3d.jobs.submit`` (request/reply and the SUBMISSIONS stream)."""

    object_id: ObjectId
    dataset: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
    priority: Priority = Priority.NORMAL
    options: TrainOptions = msgspec.field(default_factory=TrainOptions)
    submitted_by: str = ""
    # Rigs set this so a resend after a lost reply is recognised as the same submission.
    request_id: str | None = None
    # Train again even if an earlier job for the same dataset and options exists.
    force: bool = False


class SubmitReply(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    job_id: str
    duplicate: bool = False
    state: JobState | None = None


class WorkItem(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One attempt of a job on the WORK stream (``f3d.work.train.<priority>``)."""

    job_id: JobId
    object_id: ObjectId
    dataset: str
    attempt: Count
    options: TrainOptions
    priority: Priority = Priority.NORMAL
    traceparent: str | None = None


#: Artifact kind of the splat as trained, before reduction: kept for review, never published.
UNREDUCED_KIND = "splat-unreduced"


class Artifact(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    kind: str  # "splat", UNREDUCED_KIND, "config", "thumbnail", "log"
    format: str  # a SplatFormatName for kind "splat"; "yml", "png" for the others
    up: UpAxis | None = None  # for splats: the up axis of the file's data as stored (see UpAxis)
    # For splats: the side the training cameras looked at most, as an azimuth in degrees about +Y
    # of the upright frame (0 = from +Z, 90 = from +X; the viewer config's camera.azimuth). The
    # viewer opens there when staff saved no view (libs/viewer/opening.py); None: no clear side.
    front_azimuth: Annotated[float, msgspec.Meta(ge=0, lt=360)] | None = None
    uri: str
    bytes: Count
    sha256: str
    gaussians: Count | None = None


class StepTiming(msgspec.Struct, frozen=True, kw_only=True):
    step: str
    seconds: Real


class JobEventBase(Event, frozen=True, kw_only=True, omit_defaults=True):
    job_id: JobId
    object_id: ObjectId
    ts: Real
    attempt: Count = 1
    actor: str = ""


class JobQueued(JobEventBase, frozen=True, kw_only=True, tag="job.queued/1"):
    """A WorkItem for ``attempt`` is (about to be) on the WORK stream."""

    dataset: str
    priority: Priority
    options: TrainOptions
    # The submission this job came from (rigs use it to learn their job id).
    request_id: str | None = None
    # "submitted" (first attempt), "retry" (after a backoff) or "requeue" (by an operator).
    reason: str = "submitted"
    max_attempts: Count | None = None
    # W3C trace context of the job's trace: every attempt's WorkItem carries it, so the
    # trainer's spans join the trace the submission started (one trace per job).
    traceparent: str | None = None


class JobStarted(JobEventBase, frozen=True, kw_only=True, tag="job.started/1"):
    trainer: str
    host: str


class JobProgress(JobEventBase, frozen=True, kw_only=True, tag="job.progress/1"):
    stage: str
    step: Count = 0
    total: Count = 0
    eta_s: Real | None = None


class JobSucceeded(JobEventBase, frozen=True, kw_only=True, tag="job.succeeded/1"):
    artifacts: list[Artifact]
    metrics: dict[str, Real] = msgspec.field(default_factory=dict)
    timings: list[StepTiming] = msgspec.field(default_factory=list)


class JobFailed(JobEventBase, frozen=True, kw_only=True, tag="job.failed/1"):
    error: str
    step: str = ""
    will_retry: bool = False
    retry_in_s: Real | None = None


class JobRetried(JobEventBase, frozen=True, kw_only=True, tag="job.retried/1"):
    """Attempt ``attempt`` failed; attempt + 1 is queued at ``retry_at``."""

    reason: str = ""
    retry_at: Real | None = None
    delay_s: Real | None = None


class JobDead(JobEventBase, frozen=True, kw_only=True, tag="job.dead/1"):
    error: str


class JobCancelled(JobEventBase, frozen=True, kw_only=True, tag="job.cancelled/1"):
    reason: str = ""


JobEvent = (
    JobQueued | JobStarted | JobProgress | JobSucceeded | JobFailed | JobRetried | JobDead | JobCancelled
)

# ---------------------------------------------------------------------------
# Queries and commands of the queue service (request/reply on f3d.api.jobs.*).
# ---------------------------------------------------------------------------


class JobsQuery(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Body of ``f3d.api.jobs.list``: newest first."""

    states: list[JobState] = msgspec.field(default_factory=list)
    object_id: str | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 200


class JobSummary(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One job as the queue sees it now."""

    job_id: str
    object_id: str
    dataset: str
    priority: Priority
    state: JobState
    attempt: Count
    # Highest attempt number the job may reach; retries count from first_attempt
    # (1, or the attempt an operator requeued it at).
    max_attempts: Count
    created: Real
    updated: Real
    first_attempt: Count = 1
    options: TrainOptions = msgspec.field(default_factory=TrainOptions)
    request_id: str | None = None
    started: Real | None = None
    finished: Real | None = None
    trainer: str | None = None
    stage: str | None = None
    step: Count = 0
    total: Count = 0
    eta_s: Real | None = None
    error: str | None = None
    retry_at: Real | None = None
    traceparent: str | None = None


class JobsList(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    jobs: list[JobSummary]
    counts: dict[str, Count] = msgspec.field(default_factory=dict)
    leader: str | None = None


class JobRef(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Body of ``f3d.api.jobs.get``, ``.cancel`` and ``.requeue``."""

    job_id: str
    reason: str = ""
    actor: str = ""


class TimelineEntry(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    ts: Real
    type: str
    attempt: Count
    text: str


class JobDetail(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    job: JobSummary
    timeline: list[TimelineEntry] = msgspec.field(default_factory=list)


class JobActionReply(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    job_id: str
    state: JobState | None = None


SCHEMAS = (
    SubmitRequest,
    SubmitReply,
    WorkItem,
    JobsQuery,
    JobsList,
    JobRef,
    JobDetail,
    JobActionReply,
)


# ---------------------------------------------------------------------------
# The queue's API (any instance answers; commands run on the leader)
# ---------------------------------------------------------------------------
SUBMIT: Api[SubmitRequest, SubmitReply] = Api("jobs", "submit", SubmitRequest, SubmitReply)
LIST: Api[JobsQuery, JobsList] = Api("jobs", "list", JobsQuery, JobsList)
GET: Api[JobRef, JobDetail] = Api("jobs", "get", JobRef, JobDetail)
CANCEL: Api[JobRef, JobActionReply] = Api("jobs", "cancel", JobRef, JobActionReply)
REQUEUE: Api[JobRef, JobActionReply] = Api("jobs", "requeue", JobRef, JobActionReply)
# Only the current queue leader listens here; the other instances forward commands to it
# (same bodies and replies as the public command).
LEADER_PREFIX = f"{API_PREFIX}.queue.leader"


def leader_subject(command: Api[SubmitRequest, SubmitReply] | Api[JobRef, JobActionReply]) -> str:
    return f"{LEADER_PREFIX}.{command.name}"


def job_id_for(request_id: str) -> str:
    """The same submission always gets the same job id, whichever leader (or client) derives it."""
    return "j-" + hashlib.sha256(request_id.encode()).hexdigest()[:16]


class SubmissionError(ValueError):
    """A submission that cannot become a job; the message says what to fix."""


_OPTION_NAMES = {
    "steps": "--steps",
    "reduce_keep": "--reduce-keep",
    "reduce_iterations": "--reduce-iterations",
    "sh_degree": "--sh-degree",
}


def readable_decode_error(exc: Exception) -> str:
    """'Expected `int` >= 100 - at `$.options.steps`' -> 'option --steps: must be >= 100'.

    The CLI checks a submission with it before sending, and the queue answers with it,
    so a person at a capture rig reads the same sentence either way.
    """
    text = str(exc)
    m = re.match(r"^(?P<what>.*?)(?: - at `\$\.(?P<path>[^`]+)`)?$", text)
    if not m or not m.group("path"):
        return f"invalid submission: {text}"
    path = m.group("path")
    what = m.group("what")
    what = re.sub(r"^Expected `(\w+)`", r"expected a \1", what)
    what = what.replace("`", "")
    leaf = path.rsplit(".", 1)[-1]
    if path.startswith("options.") and leaf in _OPTION_NAMES:
        return f"option {_OPTION_NAMES[leaf]}: {what}"
    return readable(exc)  # the field, and what its rule asks for


def decode_submission(data: bytes) -> SubmitRequest:
    try:
        return msgspec.json.decode(data, type=SubmitRequest)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise SubmissionError(readable_decode_error(exc)) from exc
