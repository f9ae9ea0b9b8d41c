"""What people can do to objects, and the rules that keep the catalog consistent.

Both the HTTP API (signed-in staff) and the NATS endpoints (the CLI) call these. Every
change is first published as an object event (so the token gateway and any other reader
sees it) and then recorded in the store through the same path the consumer uses; if the
publish fails nothing is recorded, and a recorded event seen again is skipped.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import shlex
import time
import uuid
from contextlib import AbstractContextManager
from pathlib import Path

import msgspec
import nats.errors
import nats.js.errors
from opentelemetry.trace import Span

from foto3d.libs.bus.connection import Bus
from foto3d.libs.bus.publish import PublishError
from foto3d.libs.tracing.job import current_traceparent, object_span
from foto3d.proto import subjects
from foto3d.proto.api import ServiceError
from foto3d.proto.jobs import (
    SUBMIT,
    JobQueued,
    Priority,
    SubmitReply,
    SubmitRequest,
    TrainOptions,
    TrainOverrides,
)
from foto3d.proto.naming import NamingError, make_object_id, slugify
from foto3d.proto.objects import (
    PUBLISHER_PUBLISH,
    Checklist,
    Customer,
    CustomerAdded,
    Decision,
    JobView,
    LiveStatus,
    ObjectCaptured,
    ObjectPublished,
    ObjectRegistered,
    ObjectReview,
    ObjectStatusChanged,
    ObjectStreamEvent,
    ObjectView,
    PublicationView,
    PublishedObject,
    PublishRequest,
    Stage,
    SubmittedObject,
)
from foto3d.proto.rules import MAX_CUSTOMER, CustomerSlug
from foto3d.services.catalog.refs import ReferenceImages
from foto3d.services.catalog.store import CatalogStore
from foto3d.services.catalog.viewer_settings import latest_settings

MAX_REFERENCE_IMAGE = 768 * 1024
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}
REVIEWABLE = {Stage.IN_REVIEW.value, Stage.APPROVED.value, Stage.REJECTED.value}
RESUBMITTABLE = {Stage.REJECTED.value, Stage.FAILED.value}


# JetStream's compare-and-set on a subject: "store this only if the subject's last message
# has this sequence" (0: the subject holds none yet).
FIRST_ON_SUBJECT = "Nats-Expected-Last-Subject-Sequence"
WRONG_LAST_SEQUENCE = 10071  # JetStream's error code when that check fails
# Serials a registration tries past the local table's last one when another writer took them.
SERIAL_TRIES = 50


def wrong_last_sequence(exc: PublishError) -> bool:
    cause = exc.__cause__
    return isinstance(cause, nats.js.errors.APIError) and cause.err_code == WRONG_LAST_SEQUENCE


class ActionError(ServiceError):
    """A request the catalog refuses; ``status`` is the HTTP status to answer with.

    Over NATS it is the error code of the reply (the micro convention)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(str(status), message)
        self.status = status


class Taken(ActionError):
    """The first event of a subject is already stored: the id or customer exists (409)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 409)


def _clean_text(value: str, what: str, max_len: int) -> str:
    text = value.strip()
    if any(ord(c) < 32 for c in text):
        raise ActionError(f"{what} contains control characters")
    if len(text) > max_len:
        raise ActionError(f"{what} is longer than {max_len} characters")
    return text


def _after(row: ObjectView) -> float:
    """Now, but never before the object's current stage (a trainer's clock may run ahead),
    so a decision always lands after the event it decides on."""
    return max(time.time(), row.pipeline_ts + 0.001, row.status_ts + 0.001)


class Catalog:
    def __init__(
        self, store: CatalogStore, bus: Bus, refs_dir: Path, publish_timeout_s: float = 1800.0
    ) -> None:
        self.store = store
        self.bus = bus
        self.refs_dir = refs_dir
        self.refs = ReferenceImages(bus, refs_dir)
        self.publish_timeout_s = publish_timeout_s
        self._register_lock = asyncio.Lock()
        self._customer_lock = asyncio.Lock()
        self._publishing: set[str] = set()

    async def record(self, event: ObjectStreamEvent, *, first: bool = False) -> None:
        """Publish an object (or customer) event, then record it (the consumer's later copy
        is skipped).

        ``first``: the event must be the first on its subject (a registration, a customer's
        addition). JetStream refuses it when the subject already holds one, whoever wrote
        that (another catalog instance that believed it led): :class:`Taken`.
        """
        if isinstance(event, CustomerAdded):
            subject = subjects.customer_events(event.customer)
        else:
            subject = subjects.object_events(event.object_id)
            if event.traceparent is None:
                # The step's span (in the object's trace) rides with the event, for the gateway.
                event = msgspec.structs.replace(event, traceparent=current_traceparent())
        headers = {FIRST_ON_SUBJECT: "0"} if first else None
        try:
            ack = await self.bus.publish(subject, event, msg_id=event.event_id, headers=headers)
        except PublishError as exc:
            if not (first and wrong_last_sequence(exc) and await self._stored_is(subject, event)):
                if first and wrong_last_sequence(exc):
                    raise Taken(f"{subject} already has its first event") from None
                raise ActionError(
                    f"could not publish the change on the bus ({exc}); nothing changed", 503
                ) from exc
        except Exception as exc:
            raise ActionError(
                f"could not publish the change on the bus ({exc}); nothing changed", 503
            ) from exc
        else:
            # The same Nats-Msg-Id within the duplicate window: ours (a retried publish) or
            # another writer's event with the same id (the same object id or customer).
            if first and getattr(ack, "duplicate", False) and not await self._stored_is(subject, event):
                raise Taken(f"{subject} already has its first event")
        await self.store.ingest([event])

    async def _stored_is(self, subject: str, event: ObjectStreamEvent) -> bool:
        """Whether the first event stored on ``subject`` is ``event`` itself (a retried publish
        of ours that had landed), not another writer's."""
        try:
            msg = await self.bus.js.get_msg(subjects.OBJECT_EVENTS_STREAM, seq=1, next=True, subject=subject)
        except Exception as exc:
            raise ActionError(f"could not read {subject} back from the bus ({exc}); try again", 503) from exc
        return bool(msg.data == msgspec.json.encode(event))

    async def trace_of(self, object_id: str, job_id: str | None) -> str | None:
        """The object's trace: its job's (the trace training is in, from the submission on),
        else its registration's; None when neither is recorded."""
        detail = await self.store.submitted_detail(job_id) if job_id else None
        if detail is None:
            detail = await self.store.registered_detail(object_id)
        if isinstance(detail, str | bytes):
            detail = msgspec.json.decode(detail)
        found = detail.get("traceparent") if isinstance(detail, dict) else None
        return found if isinstance(found, str) else None

    async def step_span(
        self, row: ObjectView, name: str, step: str, job_id: str | None = None
    ) -> AbstractContextManager[Span]:
        """A span for a step of the object, in the object's trace (see :meth:`trace_of`)."""
        return object_span(
            name,
            object_id=row.object_id,
            step=step,
            customer=row.customer,
            job_id=job_id or "",
            traceparent=await self.trace_of(row.object_id, job_id),
        )

    async def obj(self, object_id: str) -> ObjectView:
        row = await self.store.get(object_id)
        if row is None:
            raise ActionError(f"no object {object_id!r} in the catalog", 404)
        return row

    # -- customers and onboarding ------------------------------------------------------------

    async def add_customer(self, slug: str, name: str, actor: str) -> Customer:
        slug = slug.strip()
        try:
            msgspec.convert(slug, CustomerSlug)
        except msgspec.ValidationError:
            suggestion = slugify(slug, MAX_CUSTOMER).replace("-", "")
            hint = f" (e.g. {suggestion!r})" if suggestion else ""
            raise ActionError(
                f"customer id {slug!r} must be 1-20 lowercase letters and digits, no dashes or spaces{hint}"
            ) from None
        name = _clean_text(name or slug, "customer name", 200)
        # An event like any object's, so a rebuilt database has the name and who added it.
        async with self._customer_lock:
            if await self.store.customer(slug) is not None:
                raise ActionError(f"customer {slug!r} already exists", 409)
            event = CustomerAdded(
                event_id=f"customer-{slug}", customer=slug, name=name, ts=time.time(), actor=actor
            )
            try:
                await self.record(event, first=True)
            except Taken:
                # Added through another catalog instance (this one has not read it yet).
                raise ActionError(f"customer {slug!r} already exists", 409) from None
        row = await self.store.customer(slug)
        assert row is not None
        return row

    async def _unknown_customer(self, customer: str) -> str:
        """The refusal for an unknown customer, naming a command that will be accepted.

        Customer ids are lowercase slugs: `--customer Acme` is pointed at `acme` (when that
        exists) or at `customer-add acme --name 'Acme'`, never at a slug the catalog rejects.
        """
        slug = slugify(customer, 20).replace("-", "")
        if slug != customer and await self.store.customer(slug) is not None:
            return f"unknown customer {customer!r}: customer ids are lowercase; did you mean {slug!r}?"
        if not slug:
            return f"unknown customer {customer!r}: add it first (foto3d objects customer-add ID --name NAME)"
        name = f" --name {shlex.quote(customer)}" if slug != customer else ""
        return f"unknown customer {customer!r}: add it first (foto3d objects customer-add {slug}{name})"

    async def register(
        self,
        customer: str,
        display_name: str,
        actor: str,
        reference_image: str = "",
        image_b64: str = "",
        image_name: str = "",
    ) -> ObjectView:
        customer = customer.strip()
        if await self.store.customer(customer) is None:
            raise ActionError(await self._unknown_customer(customer), 404)
        display_name = _clean_text(display_name, "display name", 200)
        if not display_name:
            raise ActionError("display name is empty")
        slug = slugify(display_name, 40)
        if not slug:
            raise ActionError(
                f"display name {display_name!r} has no letters or digits to build an object id from"
            )
        image = b""
        suffix = ""
        if image_b64:
            suffix = Path(image_name or "reference.png").suffix.lower()
            if suffix not in IMAGE_TYPES:
                raise ActionError(f"reference image must be one of {', '.join(IMAGE_TYPES)}, got {suffix!r}")
            try:
                image = base64.b64decode(image_b64, validate=True)
            except (binascii.Error, ValueError):
                raise ActionError("reference image is not valid base64") from None
            if len(image) > MAX_REFERENCE_IMAGE:
                raise ActionError(f"reference image is larger than {MAX_REFERENCE_IMAGE // 1024} KiB")
        async with self._register_lock:
            # Serials come from the serials table, which keeps the highest ever used for the
            # customer+slug, so this instance never hands an id out twice; the registration
            # being the first event on the object's subject keeps another writer (an old
            # leader with a request in flight) from taking the same one: then the next serial.
            first_serial = await self.store.last_serial(customer, slug) + 1
            for serial in range(first_serial, first_serial + SERIAL_TRIES):
                try:
                    object_id = make_object_id(customer, display_name, serial)
                except NamingError as exc:
                    raise ActionError(str(exc)) from exc
                try:
                    await self._registered(
                        object_id, customer, display_name, slug, serial, actor, reference_image, image, suffix
                    )
                except Taken:
                    continue
                return await self.obj(object_id)
        raise ActionError(f"no free serial for {customer}/{slug} after {SERIAL_TRIES} tries; try again", 503)

    async def _registered(
        self,
        object_id: str,
        customer: str,
        display_name: str,
        slug: str,
        serial: int,
        actor: str,
        reference_image: str,
        image: bytes,
        suffix: str,
    ) -> None:
        ref = reference_image.strip()
        stored = False
        if image:
            # In the replicated bucket before the event that names it is published.
            await self.refs.put(f"{object_id}{suffix}", image)
            stored = True
            ref = f"/objects/{object_id}/reference"
        event = ObjectRegistered(
            event_id=f"registered-{object_id}",
            object_id=object_id,
            ts=time.time(),
            actor=actor,
            customer=customer,
            display_name=display_name,
            slug=slug,
            serial=serial,
            reference_image=ref,
        )
        # The object's first trace (its jobs continue it when the catalog submits them).
        try:
            with object_span("register object", object_id=object_id, step="register", customer=customer):
                await self.record(event, first=True)
        except Taken:
            if stored:
                await self.refs.discard(f"{object_id}{suffix}")
            raise

    async def reference_path(self, object_id: str) -> Path | None:
        """The reference image's file here, fetched from the bucket when this instance has none."""
        return await self.refs.path(object_id)

    async def captured(self, object_id: str, dataset: str, photos: int, rig: str, actor: str) -> ObjectView:
        row = await self.obj(object_id)
        dataset = _clean_text(dataset, "dataset", 2000)
        if not dataset:
            raise ActionError("dataset is empty")
        with await self.step_span(row, "captured", "capture"):
            await self.record(
                ObjectCaptured(
                    event_id=f"captured-{uuid.uuid4().hex}",
                    object_id=object_id,
                    ts=_after(row),
                    actor=actor,
                    dataset=dataset,
                    photos=max(0, photos),
                    rig=_clean_text(rig, "rig", 200),
                )
            )
        return await self.obj(object_id)

    # -- approval ----------------------------------------------------------------------------

    async def latest_trained_job(self, object_id: str) -> JobView | None:
        for job in await self.store.jobs(object_id):
            if job.state == "succeeded" and job.artifacts:
                return job
        return None

    async def review(
        self, object_id: str, decision: Decision, checklist: Checklist, comment: str, actor: str
    ) -> ObjectView:
        row = await self.obj(object_id)
        comment = _clean_text(comment, "comment", 4000)
        if row.stage not in REVIEWABLE:
            raise ActionError(
                f"{object_id} is {row.stage.replace('_', ' ')}; only a trained object waiting for review "
                "can be approved or rejected",
                409,
            )
        job = await self.latest_trained_job(object_id)
        if job is None:
            raise ActionError(f"{object_id} has no trained model to review", 409)
        if decision == Decision.APPROVED and not checklist.complete():
            missing = [
                label
                for ok, label in (
                    (checklist.training_quality, "training quality"),
                    (checklist.alignment, "position/alignment"),
                    (checklist.manual_adjustments, "manual adjustments done"),
                )
                if not ok
            ]
            raise ActionError(f"approval needs every checklist item; not checked: {', '.join(missing)}")
        if decision == Decision.REJECTED and not comment:
            raise ActionError("a rejection needs a reason in the comment (it goes back to training)")
        with await self.step_span(
            row,
            f"review: {decision.value}",
            "approve" if decision == Decision.APPROVED else "reject",
            job.job_id,
        ):
            await self.record(
                ObjectReview(
                    event_id=f"review-{uuid.uuid4().hex}",
                    object_id=object_id,
                    ts=_after(row),
                    actor=actor,
                    decision=decision,
                    job_id=job.job_id,
                    checklist=checklist,
                    comment=comment,
                )
            )
        return await self.obj(object_id)

    # -- live status ---------------------------------------------------------------------------

    async def set_status(
        self, object_id: str, status: LiveStatus, reason: str, actor: str, event_id: str = ""
    ) -> ObjectView:
        """``event_id``: a caller that may repeat the change after a restart names it, so the
        repeat is deduplicated on the bus and in the timeline."""
        row = await self.obj(object_id)
        reason = _clean_text(reason, "reason", 1000)
        if row.status == status.value:
            return row
        if status != LiveStatus.DISABLED and row.published_version is None:
            raise ActionError(
                f"{object_id} is not published yet; publish it before making it {status.value}", 409
            )
        previous = LiveStatus(row.status) if row.status else None
        job_id = row.approved_job_id or row.job_id
        with await self.step_span(row, f"status: {status.value}", "status", job_id):
            await self.record(
                ObjectStatusChanged(
                    event_id=event_id or f"status-{uuid.uuid4().hex}",
                    object_id=object_id,
                    ts=_after(row),
                    actor=actor,
                    status=status,
                    previous=previous,
                    reason=reason,
                )
            )
        return await self.obj(object_id)

    # -- publishing ----------------------------------------------------------------------------

    async def publish(self, object_id: str, actor: str) -> PublishedObject:
        row = await self.obj(object_id)
        if row.status == LiveStatus.DISABLED.value:
            raise ActionError(f"{object_id} is disabled; set its status to production/demo/test first", 409)
        job_id = row.approved_job_id
        if not job_id:
            raise ActionError(
                f"{object_id} is not approved (stage: {row.stage.replace('_', ' ')}); "
                "only approved objects can be published",
                409,
            )
        job = await self.store.job(job_id)
        if job is None or not job.artifacts:
            raise ActionError(f"the approved job {job_id} of {object_id} has no recorded artifacts", 409)
        pubs = await self.store.publications(object_id)
        same = [p for p in pubs if p.job_id == job_id]
        version = same[0].version if same else (max((p.version for p in pubs), default=0) + 1)
        if object_id in self._publishing:
            raise ActionError(f"{object_id} is being published right now", 409)
        req = PublishRequest(
            object_id=object_id,
            customer=row.customer,
            version=version,
            job_id=job_id,
            artifacts=job.artifacts,
            display_name=row.display_name,
            actor=actor,
            not_before=_after(row),
            viewer=await latest_settings(self.store, object_id),
        )
        self._publishing.add(object_id)
        try:
            # The publisher's upload joins this span (the request carries its context).
            with await self.step_span(row, "publish", "publish", job_id):
                reply = await self.bus.call(PUBLISHER_PUBLISH, req, timeout=self.publish_timeout_s)
        except ServiceError as exc:
            raise ActionError(
                f"publishing {object_id} failed: {exc.description}; nothing was marked published", 502
            ) from None
        except nats.errors.NoRespondersError:
            raise ActionError("the publisher service is not running; try again when it is up", 503) from None
        except (TimeoutError, nats.errors.TimeoutError):
            raise ActionError(
                f"the publisher did not answer within {self.publish_timeout_s:.0f} s; "
                "the object's timeline will show the outcome",
                504,
            ) from None
        finally:
            self._publishing.discard(object_id)
        await self.store.ingest([reply.event])
        out = await self.obj(object_id)
        return PublishedObject(**msgspec.structs.asdict(out), published=reply.event)

    async def rollback(self, object_id: str, version: int, actor: str) -> ObjectView:
        """Make an earlier published version live again: its files, as published then, are
        announced again (nothing is uploaded), so every gateway serves them at once."""
        row = await self.obj(object_id)
        pubs = {p.version: p for p in await self.store.publications(object_id)}
        target = pubs.get(version)
        if target is None:
            have = ", ".join(f"v{v}" for v in sorted(pubs)) or "none"
            raise ActionError(f"{object_id} has no published v{version} (published: {have})", 404)
        current = row.published_version
        if current == version:
            return row
        with await self.step_span(row, f"rollback to v{version}", "rollback", target.job_id):
            await self._rolled_back(row, target, actor)
        return await self.obj(object_id)

    async def _rolled_back(self, row: ObjectView, target: PublicationView, actor: str) -> None:
        object_id, version, current = row.object_id, target.version, row.published_version
        await self.record(
            ObjectPublished(
                event_id=f"rollback-{uuid.uuid4().hex}",
                object_id=object_id,
                ts=_after(row),
                actor=actor,
                version=version,
                job_id=target.job_id,
                live_url=target.live_url,
                files=list(target.files),
                rollback_from=current or 0,
            )
        )

    # -- back to training -----------------------------------------------------------------------

    async def resubmit(
        self,
        object_id: str,
        actor: str,
        priority: Priority | None = None,
        overrides: TrainOverrides | None = None,
    ) -> SubmittedObject:
        row = await self.obj(object_id)
        if row.stage not in RESUBMITTABLE:
            raise ActionError(
                f"{object_id} is {row.stage.replace('_', ' ')}; only rejected or failed objects are resubmitted",
                409,
            )
        if not row.dataset:
            raise ActionError(f"{object_id} has no recorded dataset to train again", 409)
        last = await self._last_submission(row.job_id)
        train = (overrides or TrainOverrides()).over(last.options if last else TrainOptions())
        req = SubmitRequest(
            object_id=object_id,
            dataset=row.dataset,
            priority=priority or (last.priority if last else Priority.NORMAL),
            options=train,
            submitted_by=actor,
            force=True,
        )
        reply = await self._submit(req, "resubmission")
        out = await self.obj(object_id)
        return SubmittedObject(
            **{**msgspec.structs.asdict(out), "job_id": reply.job_id},
            priority=req.priority,
            options=req.options,
        )

    async def submit(self, object_id: str, actor: str) -> SubmittedObject:
        """The first training of a captured object (its recorded dataset), as `foto3d submit` does;
        the queue checks the dataset and the options and answers with the job id."""
        row = await self.obj(object_id)
        if row.stage != Stage.CAPTURED.value:
            hint = (
                "mark it captured first" if row.stage == Stage.REGISTERED.value else "it has been submitted"
            )
            raise ActionError(f"{object_id} is {row.stage.replace('_', ' ')}; {hint}", 409)
        if not row.dataset:
            raise ActionError(f"{object_id} has no recorded dataset; mark it captured with one", 409)
        req = SubmitRequest(object_id=object_id, dataset=row.dataset, submitted_by=actor)
        # The first job continues the registration's trace: one trace from registering on.
        with await self.step_span(row, "submit for training", "submit-request"):
            reply = await self._submit(req, "submission")
        out = await self.obj(object_id)
        return SubmittedObject(**{**msgspec.structs.asdict(out), "job_id": reply.job_id})

    async def _submit(self, req: SubmitRequest, what: str) -> SubmitReply:
        try:
            return await self.bus.call(SUBMIT, req, timeout=10.0)
        except ServiceError as exc:
            raise ActionError(f"the queue refused the {what}: {exc.description}", 409) from None
        except nats.errors.NoRespondersError:
            raise ActionError(
                f"the queue service is not running; retry the {what} when it is up", 503
            ) from None
        except (TimeoutError, nats.errors.TimeoutError):
            raise ActionError("the queue service did not answer; try again", 504) from None

    async def _last_submission(self, job_id: str | None) -> JobQueued | None:
        """The last job's submission as recorded here, so a resubmission keeps its priority and options."""
        detail = await self.store.submitted_detail(job_id) if job_id else None
        if detail is None:
            return None
        try:
            return (
                msgspec.convert(detail, JobQueued)
                if isinstance(detail, dict)
                else msgspec.json.decode(detail, type=JobQueued)
            )
        except (msgspec.ValidationError, msgspec.DecodeError):
            return None
