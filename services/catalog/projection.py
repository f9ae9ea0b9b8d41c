"""How each bus event becomes timeline entries and changes to an object's row.

The catalog's tables are a projection of two streams (OBJECT_EVENTS and JOB_EVENTS).
Every entry has a natural key so the same event seen twice (redelivery, a re-published
job event, the catalog ingesting its own event before its consumer does) is kept once.
Every row change is guarded by the event's timestamp, so applying a batch in any order
ends in the same state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

from foto3d.libs.tracing.job import trace_id_of
from foto3d.proto.jobs import (
    JobCancelled,
    JobDead,
    JobEvent,
    JobFailed,
    JobProgress,
    JobQueued,
    JobRetried,
    JobStarted,
    JobSucceeded,
)
from foto3d.proto.objects import (
    CustomerAdded,
    Decision,
    ObjectCaptured,
    ObjectEvent,
    ObjectNoted,
    ObjectPublished,
    ObjectPublishFailed,
    ObjectRegistered,
    ObjectReview,
    ObjectStatusChanged,
    ObjectViewerSaved,
    Stage,
)

AnyEvent = ObjectEvent | CustomerAdded | JobEvent


@dataclass
class Entry:
    """One timeline row."""

    key: str
    object_id: str
    ts: float
    kind: str
    actor: str
    summary: str
    detail: bytes  # the whole event as JSON (what the timeline's "details" show)
    job_id: str | None = None


@dataclass
class Op:
    """One guarded change to the projection (SQL name + parameters)."""

    name: str
    params: tuple[Any, ...]


@dataclass
class Projected:
    entries: list[Entry] = field(default_factory=list)
    ops: list[Op] = field(default_factory=list)


_encoder = msgspec.json.Encoder()


def _trace_note(traceparent: str | None) -> str:
    """The job's trace id for the object's timeline (to look the trace up in the tracing backend)."""
    trace_id = trace_id_of(traceparent)
    return f"; trace {trace_id}" if trace_id else ""


def _detail(ev: msgspec.Struct) -> bytes:
    return _encoder.encode(ev)


def _stage(object_id: str, stage: Stage, ts: float) -> Op:
    return Op("stage", (stage.value, ts, object_id, ts))


def _fmt_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def project(ev: AnyEvent) -> Projected:
    """Timeline entries and row changes for one event (empty for events the catalog ignores)."""
    out = Projected()
    if isinstance(ev, CustomerAdded):
        # Not an object's: no timeline entry, one row change that keeps the first addition
        # (ops without an entry are applied every time they are seen, so it must be idempotent).
        out.ops.append(Op("customer", (ev.customer, ev.name, ev.ts, ev.actor)))
        return out
    oid = ev.object_id
    if isinstance(ev, JobProgress):
        return out  # progress is the trainer's business; the stage already says "training"
    # Any event may be the first the catalog sees of an object (streams interleave, a
    # consumer catches up): make sure the row exists so no change is lost; registration
    # fills in the rest.
    out.ops.append(Op("ensure", (oid, oid.split("-", 1)[0], oid, ev.ts)))
    if isinstance(ev, ObjectRegistered):
        out.entries.append(
            Entry(
                f"ev:{ev.event_id}",
                oid,
                ev.ts,
                "registered",
                ev.actor,
                f"registered for {ev.customer} as “{ev.display_name}”",
                _detail(ev),
            )
        )
        out.ops.append(
            Op(
                "insert_object",
                (oid, ev.customer, ev.slug, ev.serial, ev.display_name, ev.reference_image, ev.ts, ev.actor),
            )
        )
        out.ops.append(Op("serial", (ev.customer, ev.slug, ev.serial)))
        out.ops.append(_stage(oid, Stage.REGISTERED, ev.ts))
    elif isinstance(ev, ObjectCaptured):
        photos = f"{ev.photos} photos, " if ev.photos else ""
        out.entries.append(
            Entry(
                f"ev:{ev.event_id}",
                oid,
                ev.ts,
                "captured",
                ev.actor or ev.rig,
                f"captured ({photos}dataset {ev.dataset})",
                _detail(ev),
            )
        )
        out.ops.append(Op("dataset", (ev.dataset, oid, ev.ts)))
        out.ops.append(_stage(oid, Stage.CAPTURED, ev.ts))
    elif isinstance(ev, ObjectReview):
        approved = ev.decision == Decision.APPROVED
        summary = f"{'approved' if approved else 'rejected'} job {ev.job_id}"
        if ev.comment:
            summary += f": {ev.comment}"
        out.entries.append(
            Entry(
                f"ev:{ev.event_id}",
                oid,
                ev.ts,
                ev.decision.value,
                ev.actor,
                summary,
                _detail(ev),
                ev.job_id,
            )
        )
        out.ops.append(Op("approval", (ev.job_id if approved else None, ev.ts, oid, ev.ts)))
        out.ops.append(_stage(oid, Stage.APPROVED if approved else Stage.REJECTED, ev.ts))
    elif isinstance(ev, ObjectStatusChanged):
        summary = f"status {ev.previous.value + ' → ' if ev.previous else ''}{ev.status.value}"
        if ev.reason:
            summary += f": {ev.reason}"
        out.entries.append(Entry(f"ev:{ev.event_id}", oid, ev.ts, "status", ev.actor, summary, _detail(ev)))
        out.ops.append(Op("status", (ev.status.value, ev.ts, oid, ev.ts)))
    elif isinstance(ev, ObjectPublished):
        summary = f"published v{ev.version} ({len(ev.files)} files, {ev.uploaded} uploaded)"
        if ev.rollback_from:
            summary = f"rolled back to v{ev.version} (v{ev.rollback_from} was live)"
        out.entries.append(
            Entry(
                f"ev:{ev.event_id}",
                oid,
                ev.ts,
                "published",
                ev.actor,
                summary,
                _detail(ev),
                ev.job_id,
            )
        )
        files = msgspec.json.encode(ev.files).decode()
        out.ops.append(Op("publication", (oid, ev.version, ev.job_id, ev.live_url, files, ev.ts, ev.actor)))
        out.ops.append(Op("published", (ev.version, ev.live_url, ev.ts, oid, ev.ts)))
        out.ops.append(_stage(oid, Stage.PUBLISHED, ev.ts))
    elif isinstance(ev, ObjectPublishFailed):
        out.entries.append(
            Entry(
                f"ev:{ev.event_id}",
                oid,
                ev.ts,
                "publish_failed",
                ev.actor,
                f"publishing v{ev.version} failed: {ev.error}",
                _detail(ev),
                ev.job_id,
            )
        )
    elif isinstance(ev, ObjectViewerSaved):
        summary = f"viewer settings v{ev.version} saved" + (f": {ev.comment}" if ev.comment else "")
        key = f"ev:{ev.event_id}"
        out.entries.append(
            Entry(key, oid, ev.ts, "viewer", ev.actor, summary, _detail(ev), ev.job_id or None)
        )
    elif isinstance(ev, ObjectNoted):
        _project_note(ev, out)
    else:
        _project_job(ev, out)
    return out


NOTE_SUMMARY_CHARS = 200


def _project_note(ev: ObjectNoted, out: Projected) -> None:
    """A capture note: a timeline entry, its row and one row per tag (``notes``)."""
    oid = ev.object_id
    text = ev.text if len(ev.text) <= NOTE_SUMMARY_CHARS else ev.text[: NOTE_SUMMARY_CHARS - 1] + "…"
    photos = f" ({len(ev.photos)} photo{'s' if len(ev.photos) != 1 else ''})" if ev.photos else ""
    summary = f"note [{' '.join(ev.tags)}]" if ev.tags else "note"
    summary += (f": {text}" if text else "") + photos
    out.entries.append(Entry(f"ev:{ev.event_id}", oid, ev.ts, "note", ev.actor, summary, _detail(ev)))
    photos_json = msgspec.json.encode(ev.photos).decode()
    customer = oid.split("-", 1)[0]  # the naming standard's first part, as "ensure" has it
    out.ops.append(
        Op("note", (ev.note_id, oid, customer, ev.ts, ev.actor, ev.text, " ".join(ev.tags), photos_json))
    )
    out.ops.extend(Op("note_tag", (tag, ev.note_id)) for tag in ev.tags)


def _project_job(ev: JobEvent, out: Projected) -> None:
    # A job for an object the catalog never registered still shows up (flagged
    # "unregistered"), so a mixed-up dataset is visible instead of silently dropped.
    oid, jid = ev.object_id, ev.job_id
    base = f"job:{jid}:{ev.attempt}"
    if isinstance(ev, JobQueued):
        out.entries.append(
            Entry(
                f"{base}:queued",
                oid,
                ev.ts,
                "submitted",
                ev.actor,
                f"submitted job {jid} ({ev.priority.value}, dataset {ev.dataset})"
                + _trace_note(ev.traceparent),
                _detail(ev),
                jid,
            )
        )
        out.ops.append(Op("job", (jid, oid, "queued", ev.dataset, ev.attempt, None, None, ev.ts)))
        out.ops.append(Op("latest_job", (jid, ev.dataset, ev.ts, oid, ev.ts)))
        out.ops.append(_stage(oid, Stage.SUBMITTED, ev.ts))
    elif isinstance(ev, JobStarted):
        out.entries.append(
            Entry(
                f"{base}:started",
                oid,
                ev.ts,
                "training",
                ev.actor or ev.trainer,
                f"training started on {ev.host} (attempt {ev.attempt})",
                _detail(ev),
                jid,
            )
        )
        out.ops.append(Op("job", (jid, oid, "running", None, ev.attempt, None, None, ev.ts)))
        out.ops.append(_stage(oid, Stage.TRAINING, ev.ts))
    elif isinstance(ev, JobSucceeded):
        splats = [a for a in ev.artifacts if a.kind == "splat"]
        formats = ", ".join(f"{a.format} {_fmt_bytes(a.bytes)}" for a in splats) or "no splat files"
        out.entries.append(
            Entry(
                f"{base}:succeeded", oid, ev.ts, "trained", ev.actor, f"trained: {formats}", _detail(ev), jid
            )
        )
        if _reduced(ev):
            # The trainer reports gaussians_raw/gaussians; older events gaussians_before/_after.
            before = ev.metrics.get("gaussians_before") or ev.metrics.get("gaussians_raw")
            after = (
                ev.metrics.get("gaussians_after")
                or ev.metrics.get("gaussians")
                or next((float(a.gaussians) for a in splats if a.gaussians), None)
            )
            what = f"{before:,.0f} → {after:,.0f} gaussians" if before and after else "splat reduced"
            out.entries.append(
                Entry(f"{base}:reduced", oid, ev.ts, "reduced", ev.actor, f"reduced: {what}", b"{}", jid)
            )
        arts = msgspec.json.encode(ev.artifacts).decode()
        metrics = msgspec.json.encode(ev.metrics).decode()
        out.ops.append(Op("job", (jid, oid, "succeeded", None, ev.attempt, arts, metrics, ev.ts)))
        out.ops.append(_stage(oid, Stage.IN_REVIEW, ev.ts))
    elif isinstance(ev, JobFailed):
        retry = " (will retry)" if ev.will_retry else ""
        out.entries.append(
            Entry(
                f"{base}:failed",
                oid,
                ev.ts,
                "failed",
                ev.actor,
                f"attempt {ev.attempt} failed{' in ' + ev.step if ev.step else ''}: {ev.error}{retry}",
                _detail(ev),
                jid,
            )
        )
        out.ops.append(Op("job", (jid, oid, "failed", None, ev.attempt, None, None, ev.ts)))
        if not ev.will_retry:
            out.ops.append(_stage(oid, Stage.FAILED, ev.ts))
    elif isinstance(ev, JobRetried):
        out.entries.append(
            Entry(
                f"{base}:retried",
                oid,
                ev.ts,
                "retried",
                ev.actor,
                f"retry {ev.attempt}{': ' + ev.reason if ev.reason else ''}",
                _detail(ev),
                jid,
            )
        )
        out.ops.append(Op("job", (jid, oid, "queued", None, ev.attempt, None, None, ev.ts)))
        out.ops.append(_stage(oid, Stage.SUBMITTED, ev.ts))
    elif isinstance(ev, JobDead | JobCancelled):
        dead = isinstance(ev, JobDead)
        why = ev.error if isinstance(ev, JobDead) else ev.reason
        kind = "dead" if dead else "cancelled"
        out.entries.append(
            Entry(
                f"{base}:{kind}",
                oid,
                ev.ts,
                kind,
                ev.actor,
                f"job {kind}{': ' + why if why else ''}",
                _detail(ev),
                jid,
            )
        )
        out.ops.append(Op("job", (jid, oid, kind, None, ev.attempt, None, None, ev.ts)))
        out.ops.append(_stage(oid, Stage.FAILED, ev.ts))


def _reduced(ev: JobSucceeded) -> bool:
    m = ev.metrics
    return bool(m.get("reduced")) or ("gaussians_before" in m and "gaussians_after" in m)
