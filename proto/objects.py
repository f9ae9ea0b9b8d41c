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

from foto3d.proto.api import Api, NoBody
from foto3d.proto.base import Count, Event, Int, Real
from foto3d.proto.jobs import Artifact, ObjectId, Priority, UpAxis
from foto3d.proto.viewer import ViewerSettings

CustomerSlug = Annotated[str, msgspec.Meta(min_length=1, max_length=20, pattern=r"^[a-z0-9]+$")]
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
    slug: str
    name: str = ""
    actor: str = ""


class RegisterObject(msgspec.Struct, frozen=True, kw_only=True):
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
    object_id: str
    actor: str = ""


class ResubmitRequest(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Body of ``catalog.resubmit``: train the object's dataset again with its last job's
    priority and options; each field set here overrides that one setting."""

    object_id: str
    actor: str = ""
    priority: Priority | None = None
    steps: int | None = None
    reduce: bool | None = None
    reduce_keep: float | None = None
    reduce_iterations: int | None = None
    sh_degree: int | None = None


class CaptureRequest(msgspec.Struct, frozen=True, kw_only=True):
    object_id: str
    dataset: str
    photos: Count = 0
    rig: str = ""
    actor: str = ""


class ReviewRequest(msgspec.Struct, frozen=True, kw_only=True):
    object_id: str
    decision: Decision
    checklist: Checklist = msgspec.field(default_factory=Checklist)
    comment: str = ""
    actor: str = ""


class StatusRequest(msgspec.Struct, frozen=True, kw_only=True):
    object_id: str
    status: LiveStatus
    reason: str = ""
    actor: str = ""


class PublishRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Catalog -> publisher: upload this approved version."""

    object_id: ObjectId
    customer: str
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


# The catalog's API. Its replies are the catalog's row views (the same JSON its HTTP
# API serves), so they are plain objects and lists rather than Structs.
Row = dict[str, Any]
CUSTOMER_ADD: Api[CustomerAdd, Row] = Api("catalog", "customer-add", CustomerAdd, Row)
CUSTOMERS: Api[NoBody, list[Row]] = Api("catalog", "customers", NoBody, list[Row])
REGISTER: Api[RegisterObject, Row] = Api("catalog", "register", RegisterObject, Row)
LIST: Api[ObjectQuery, Row] = Api("catalog", "list", ObjectQuery, Row)  # {"items", "total", "page", "limit"}
SHOW: Api[ObjectRef, Row] = Api("catalog", "show", ObjectRef, Row)
TIMELINE: Api[ObjectRef, list[Row]] = Api("catalog", "timeline", ObjectRef, list[Row])
CAPTURE: Api[CaptureRequest, Row] = Api("catalog", "capture", CaptureRequest, Row)
REVIEW: Api[ReviewRequest, Row] = Api("catalog", "review", ReviewRequest, Row)
STATUS: Api[StatusRequest, Row] = Api("catalog", "status", StatusRequest, Row)
PUBLISH: Api[ObjectRef, Row] = Api("catalog", "publish", ObjectRef, Row)
RESUBMIT: Api[ResubmitRequest, Row] = Api("catalog", "resubmit", ResubmitRequest, Row)
BOARD: Api[NoBody, Row] = Api("catalog", "board", NoBody, Row)
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
    CaptureRequest,
    ReviewRequest,
    StatusRequest,
    PublishRequest,
    PublishReply,
    PublishProgress,
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
