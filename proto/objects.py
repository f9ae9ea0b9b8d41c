"""Catalog objects: their events (the timeline's source) and the catalog/publisher API bodies.

Object events are published on ``f3d.objects.events.<object_id>`` (stream OBJECT_EVENTS),
a customer's addition on ``f3d.objects.events.customers.<slug>`` (the same stream, so the
catalog's database can be rebuilt from it alone). Each carries ``event_id`` (also its
``Nats-Msg-Id``) so a redelivered or re-published event is recorded once, ``actor`` (the
person or service that caused it) and ``ts``.

The token gateway reacts to ``object.status/1``: ``disabled`` means stop serving the model
at once; ``production``/``demo``/``test`` mean serve it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import msgspec

from foto3d.proto.api import API_PREFIX, Api, NoBody
from foto3d.proto.base import Count, Event, Int, Real
from foto3d.proto.jobs import Artifact, Priority, TrainOptions, TrainOverrides, UpAxis
from foto3d.proto.rules import CustomerSlug, ObjectId
from foto3d.proto.viewer import ViewerSettings

DisplayName = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class Stage(StrEnum):
    """Where an object is in the pipeline (the board's columns, in order)."""

    REGISTERED = "registered"
    CAPTURED = "captured"
    SUBMITTED = "submitted"
    TRAINING = "training"
    FAILED = "failed"
    IN_REVIEW = "in_review"  # trained (and reduced), waiting for a reviewer
    APPROVED = "approved"
    REJECTED = "rejected"
    PUBLISHED = "published"
    DISABLED = "disabled"


class LiveStatus(StrEnum):
    """Status of a live model, read by the token gateway."""

    PRODUCTION = "production"
    DEMO = "demo"
    TEST = "test"
    DISABLED = "disabled"


class Decision(StrEnum):
    APPROVED = "approved"
    REJECTED = "rejected"


class Checklist(msgspec.Struct, frozen=True, kw_only=True):
    """What a reviewer confirms before approving."""

    training_quality: bool = False
    alignment: bool = False  # position / alignment / orientation checked
    manual_adjustments: bool = False  # crops, cleanup and other manual steps done

    def complete(self) -> bool:
        return self.training_quality and self.alignment and self.manual_adjustments


class ObjectEventBase(Event, frozen=True, kw_only=True, omit_defaults=True):
    event_id: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    object_id: ObjectId
    ts: Real
    actor: str = ""
    # W3C trace context of the step that made the event, in the object's trace (its job's, once
    # it has one): the gateway and the catalog keep it with the object, so later steps (a token
    # for it, a fetch of its model) join that trace.
    traceparent: str | None = None


class ObjectRegistered(ObjectEventBase, frozen=True, kw_only=True, tag="object.registered/1"):
    customer: CustomerSlug
    display_name: DisplayName
    slug: str
    serial: Count
    reference_image: str = ""


class ObjectCaptured(ObjectEventBase, frozen=True, kw_only=True, tag="object.captured/1"):
    dataset: str
    photos: Count = 0
    rig: str = ""


class ObjectReview(ObjectEventBase, frozen=True, kw_only=True, tag="object.review/1"):
    decision: Decision
    job_id: str
    checklist: Checklist
    comment: str = ""


class ObjectStatusChanged(ObjectEventBase, frozen=True, kw_only=True, tag="object.status/1"):
    status: LiveStatus
    previous: LiveStatus | None = None
    reason: str = ""


class PublishedFile(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    kind: str  # "splat", "viewer_config", "thumbnail"
    format: str
    key: str
    url: str
    bytes: Count
    sha256: str
    content_type: str
    up: UpAxis | None = None  # splats: the file's up axis as stored (Artifact.up)


class ObjectPublished(ObjectEventBase, frozen=True, kw_only=True, tag="object.published/1"):
    version: Count
    job_id: str
    live_url: str  # the viewer config, what an embed points at
    files: list[PublishedFile]
    uploaded: Count = 0  # files actually sent (0 on an idempotent re-publish)
    # A rollback: an earlier version live again (its files as published then); this is the
    # version that was live before. Readers take it even though its version is lower.
    rollback_from: Count = 0


class ObjectPublishFailed(ObjectEventBase, frozen=True, kw_only=True, tag="object.publish_failed/1"):
    version: Count
    job_id: str
    error: str


class ObjectViewerSaved(ObjectEventBase, frozen=True, kw_only=True, tag="object.viewer/1"):
    """A reviewer saved viewer settings (level, default view, limits): the next publish uses them."""

    version: Count  # 1, 2, … per object
    settings: ViewerSettings
    job_id: str = ""  # the trained job the reviewer was looking at
    comment: str = ""


class ObjectNoted(ObjectEventBase, frozen=True, kw_only=True, tag="object.note/1"):
    """A capture note: what someone learned photographing this object (``proto.notes``).

    ``tags`` are ``facet:value`` words from the notes vocabulary; ``photos`` are the catalog's
    own paths of the photos it stored with the note (like ``reference_image``)."""

    note_id: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    text: str = ""
    tags: list[str] = msgspec.field(default_factory=list)
    photos: list[str] = msgspec.field(default_factory=list)


class CustomerAdded(Event, frozen=True, kw_only=True, omit_defaults=True, tag="customer.added/1"):
    """The catalog added a customer (a slug objects are registered for, and its display name)."""

    event_id: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    customer: CustomerSlug
    name: DisplayName
    ts: Real
    actor: str = ""


ObjectEvent = (
    ObjectRegistered
    | ObjectCaptured
    | ObjectReview
    | ObjectStatusChanged
    | ObjectPublished
    | ObjectPublishFailed
    | ObjectViewerSaved
    | ObjectNoted
)
# Everything on OBJECT_EVENTS. Readers that care about objects only (the token gateway)
# decode ObjectEvent and skip the rest.
ObjectStreamEvent = ObjectEvent | CustomerAdded


def publish_progress_subject(object_id: str) -> str:
    """Core (not stored) subject where the publisher reports upload progress."""
    return f"f3d.progress.publish.{object_id}"


class PublishProgress(msgspec.Struct, frozen=True, kw_only=True):
    object_id: str
    file: str
    done: Count
    total: Count
    files_done: Count
    files_total: Count


# ---------------------------------------------------------------------------
# API bodies (NATS micro endpoints under f3d.api.catalog.* / f3d.api.publisher.*)
# ---------------------------------------------------------------------------


class CustomerAdd(msgspec.Struct, frozen=True, kw_only=True):
    # Not a CustomerSlug: the catalog answers "Big Co" with the slug it would take ('bigco'),
    # which a decoding error cannot; it checks the slug by the same rule (``rules.CustomerSlug``).
    slug: str
    name: str = ""
    actor: str = ""


class RegisterObject(msgspec.Struct, frozen=True, kw_only=True):
    # Not a CustomerSlug: "Acme" is answered with "did you mean 'acme'?" (see CustomerAdd).
    customer: str
    display_name: str
    reference_image: str = ""
    # Optional small image (base64) stored by the catalog and served on the object page.
    reference_image_b64: str = ""
    reference_image_name: str = ""
    actor: str = ""


class ObjectQuery(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    customer: str | None = None
    status: str | None = None
    stage: str | None = None
    q: str | None = None  # substring of id or display name
    since: Real | None = None  # created at or after
    until: Real | None = None
    page: Int = 1
    limit: Int = 50


class ObjectRef(msgspec.Struct, frozen=True, kw_only=True):
    object_id: ObjectId
    actor: str = ""


class ResubmitRequest(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Body of ``catalog.resubmit``: train the object's dataset again with its last job's
    priority and options; ``priority`` and each option set in ``options`` override that one."""

    object_id: ObjectId
    actor: str = ""
    priority: Priority | None = None
    options: TrainOverrides = msgspec.field(default_factory=TrainOverrides)


class CaptureRequest(msgspec.Struct, frozen=True, kw_only=True):
    object_id: ObjectId
    dataset: str
    photos: Count = 0
    rig: str = ""
    actor: str = ""


class ReviewRequest(msgspec.Struct, frozen=True, kw_only=True):
    object_id: ObjectId
    decision: Decision
    checklist: Checklist = msgspec.field(default_factory=Checklist)
    comment: str = ""
    actor: str = ""


class StatusRequest(msgspec.Struct, frozen=True, kw_only=True):
    object_id: ObjectId
    status: LiveStatus
    reason: str = ""
    actor: str = ""


# A CSS colour as the viewer takes it (``proto.viewer.CssColour``), or "" for the viewer's default.
CustomerBackground = Annotated[str, msgspec.Meta(max_length=64, pattern=r"^[#a-zA-Z0-9(),.% ]*$")]


class CustomerViewerRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Body of ``catalog.customer-viewer``: the viewer settings a customer may change itself (the
    portal). An unset field stays as it is; with none set it only answers the current values.
    The camera framing, limits, levelling and hotspots are staff's and cannot be named here."""

    object_id: str
    customer: CustomerSlug  # the object must be this customer's (else: not found)
    background: CustomerBackground | None = None
    auto_rotate: bool | None = None
    poster: bool | None = None
    actor: str = ""  # ``portal:<account>``


class CustomerViewerReply(msgspec.Struct, frozen=True, kw_only=True):
    """The customer's fields of the latest saved settings, and whether this call saved a version."""

    object_id: str
    version: Count  # the latest ``object.viewer/1`` version (0: none saved yet)
    changed: bool
    background: str  # "" : the viewer's default
    auto_rotate: bool
    poster: bool


class RollbackRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Body of ``catalog.rollback``: make an earlier published version live again."""

    object_id: str
    version: Count
    actor: str = ""


class PublishRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Catalog -> publisher: upload this approved version."""

    object_id: ObjectId
    customer: CustomerSlug
    version: Count
    job_id: str
    artifacts: list[Artifact]
    display_name: str = ""
    actor: str = ""
    # The object's latest event time: the published event is stamped no earlier, so it
    # sorts after the approval even when clocks disagree.
    not_before: Real = 0.0
    # The reviewer's saved viewer settings (level, default view, limits), applied over the defaults.
    viewer: ViewerSettings | None = None


class PublishReply(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    event: ObjectPublished


# ---------------------------------------------------------------------------
# The catalog's replies: what its store reads, its NATS endpoints answer and its HTTP API
# serves (the same JSON). Field names are the catalog's; a reader never guesses a key.
# ---------------------------------------------------------------------------


class Customer(msgspec.Struct, frozen=True, kw_only=True):
    slug: str
    name: str
    created: Real
    actor: str = ""  # who added the customer
    objects: Count = 0  # how many objects it has (the customer list counts them)


class ObjectSummary(msgspec.Struct, frozen=True, kw_only=True):
    """One object as the objects table (and the CSV export) shows it."""

    object_id: str
    customer: str
    display_name: str
    reference_image: str
    registered: Int  # 1: registered here; 0: known only from job events (a mixed-up dataset)
    created: Real
    created_by: str
    stage: Stage  # the board's column: "disabled" while the live status is disabled
    stage_ts: Real
    status: LiveStatus | None  # None: never published
    dataset: str | None
    job_id: str | None  # the latest job
    approved_job_id: str | None
    published_version: Count | None
    live_url: str | None


class ObjectView(ObjectSummary, frozen=True, kw_only=True):
    """One object with the times that order its changes (what every action starts from)."""

    slug: str
    serial: Count
    pipeline_stage: Stage  # the stage without the live status's "disabled"
    pipeline_ts: Real
    status_ts: Real
    job_ts: Real
    review_ts: Real
    published_ts: Real


class ObjectPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of a filtered object list; ``total`` is -1 when it was not counted."""

    items: list[ObjectSummary]
    total: Int
    page: Count
    limit: Count


class JobView(msgspec.Struct, frozen=True, kw_only=True):
    """A training job of an object, as the catalog recorded it from the job events."""

    job_id: str
    object_id: str
    state: str  # queued, running, succeeded, failed, dead, cancelled
    dataset: str | None
    attempt: Count
    artifacts: list[Artifact]
    metrics: dict[str, Real]
    ts: Real


class PublicationView(msgspec.Struct, frozen=True, kw_only=True):
    object_id: str
    version: Count
    job_id: str
    live_url: str
    files: list[PublishedFile]
    ts: Real
    actor: str


class ObjectDetails(ObjectView, frozen=True, kw_only=True):
    """An object with its jobs (newest first) and publications (newest version first)."""

    jobs: list[JobView]
    publications: list[PublicationView]


class TimelineEntry(msgspec.Struct, frozen=True, kw_only=True):
    key: str  # the natural key that keeps a redelivered event once
    ts: Real
    kind: str  # registered, captured, submitted, training, trained, reduced, approved, …
    actor: str
    summary: str
    # The recorded event as JSON (its own type tag says which); ``{}`` for derived entries.
    detail: dict[str, Any]
    job_id: str | None


class PublishedObject(ObjectView, frozen=True, kw_only=True):
    """Reply of ``catalog.publish``: the object after publishing, and the published event."""

    published: ObjectPublished


class SubmittedObject(ObjectView, frozen=True, kw_only=True, omit_defaults=True):
    """Reply of ``catalog.resubmit`` (and the HTTP submit): ``job_id`` is the new job;
    a resubmission also says the priority and options it used."""

    priority: Priority | None = None
    options: TrainOptions | None = None


class StuckObject(msgspec.Struct, frozen=True, kw_only=True):
    object_id: str
    customer: str
    display_name: str
    stage: Stage
    stage_ts: Real
    for_s: Real = 0.0  # how long it has been in that stage


class Board(msgspec.Struct, frozen=True, kw_only=True):
    counts: dict[str, Count]  # objects per stage (stages with none are left out)
    stuck: list[StuckObject]  # longest first
    now: Real


CUSTOMER_ADD: Api[CustomerAdd, Customer] = Api("catalog", "customer-add", CustomerAdd, Customer)
CUSTOMERS: Api[NoBody, list[Customer]] = Api("catalog", "customers", NoBody, list[Customer])
REGISTER: Api[RegisterObject, ObjectView] = Api("catalog", "register", RegisterObject, ObjectView)
LIST: Api[ObjectQuery, ObjectPage] = Api("catalog", "list", ObjectQuery, ObjectPage)
SHOW: Api[ObjectRef, ObjectDetails] = Api("catalog", "show", ObjectRef, ObjectDetails)
TIMELINE: Api[ObjectRef, list[TimelineEntry]] = Api("catalog", "timeline", ObjectRef, list[TimelineEntry])
CAPTURE: Api[CaptureRequest, ObjectView] = Api("catalog", "capture", CaptureRequest, ObjectView)
REVIEW: Api[ReviewRequest, ObjectView] = Api("catalog", "review", ReviewRequest, ObjectView)
STATUS: Api[StatusRequest, ObjectView] = Api("catalog", "status", StatusRequest, ObjectView)
PUBLISH: Api[ObjectRef, PublishedObject] = Api("catalog", "publish", ObjectRef, PublishedObject)
RESUBMIT: Api[ResubmitRequest, SubmittedObject] = Api("catalog", "resubmit", ResubmitRequest, SubmittedObject)
ROLLBACK: Api[RollbackRequest, ObjectView] = Api("catalog", "rollback", RollbackRequest, ObjectView)
CUSTOMER_VIEWER: Api[CustomerViewerRequest, CustomerViewerReply] = Api(
    "catalog", "customer-viewer", CustomerViewerRequest, CustomerViewerReply
)
BOARD: Api[NoBody, Board] = Api("catalog", "board", NoBody, Board)
# A catalog standby forwards the write commands it receives to the lease holder, which alone
# answers here (docs/failover.md#the-catalog-a-warm-standby): outside ``f3d.api.catalog.>``, so
# only catalog instances reach it, with the actor the forwarding instance already proved.
CATALOG_LEADER_PREFIX = f"{API_PREFIX}.catalog-leader"


def to_catalog_leader(api: Api[Any, Any]) -> str:
    return f"{CATALOG_LEADER_PREFIX}.{api.group}.{api.name}"


# The publisher's: upload an approved job's files and answer with the published event.
PUBLISHER_PUBLISH: Api[PublishRequest, PublishReply] = Api(
    "publisher", "publish", PublishRequest, PublishReply
)

SCHEMAS = (
    CustomerAdd,
    RegisterObject,
    ObjectQuery,
    ObjectRef,
    ResubmitRequest,
    RollbackRequest,
    CustomerViewerRequest,
    CustomerViewerReply,
    CaptureRequest,
    ReviewRequest,
    StatusRequest,
    PublishRequest,
    PublishReply,
    PublishProgress,
    Customer,
    ObjectSummary,
    ObjectView,
    ObjectPage,
    JobView,
    PublicationView,
    ObjectDetails,
    TimelineEntry,
    PublishedObject,
    SubmittedObject,
    StuckObject,
    Board,
)

# Column order of the catalog's CSV export (HTTP /api/objects.csv and `foto3d objects export`).
CSV_COLUMNS = (
    "object_id",
    "customer",
    "display_name",
    "stage",
    "status",
    "created",
    "created_by",
    "dataset",
    "job_id",
    "approved_job_id",
    "published_version",
    "live_url",
)
