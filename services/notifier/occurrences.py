"""What counts as one occurrence of a problem: an ERROR record, a failed job, a silent participant.

Each becomes an :class:`Occurrence` (fingerprint + :class:`AlertInfo`) that the store
counts into the open alert of its fingerprint. The decoders of the two streams the
notifier reads live here too, beside what is made of their messages.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import msgspec

from foto3d.libs.heartbeat import Seen
from foto3d.proto.base import tolerant_decoder
from foto3d.proto.jobs import JobDead, JobFailed
from foto3d.proto.logs import Level, LogBatch
from foto3d.services.notifier.model import (
    AlertInfo,
    ContextLine,
    Occurrence,
    interruption_fingerprint,
    job_fingerprint,
    log_fingerprint,
    takeover_fingerprint,
)

_batch_json = msgspec.json.Decoder(LogBatch)
# The heartbeat kind of a site's announcement (``sites.py``).
SITE_KIND = "site"
# Only failed and dead jobs matter here; other (and future) event types pass untouched.
decode_job_event = tolerant_decoder(JobFailed | JobDead)


def decode_batch(data: bytes, _headers: Mapping[str, str]) -> LogBatch:
    """Log batches travel as msgspec JSON, the one encoding of the log path (docs/benchmarks.md)."""
    return _batch_json.decode(data)


def interruption_occurrence(seen: Seen) -> Occurrence:
    """A participant whose heartbeats stopped without a goodbye."""
    b = seen.beat
    what = (
        f"No heartbeat from {b.kind} {b.id} on {b.host} for {seen.age():.1f} s "
        f"(grace {seen.grace:g} s, last seen {time.strftime('%H:%M:%S', time.gmtime(seen.seen_at))} UTC)."
    )
    if b.pending:
        what += f" It holds {b.pending} item(s) of unsent work."
    title = f"{b.kind} {b.id} is silent"
    if b.kind == SITE_KIND:
        # Every notifier of a site announces it; none heard means the site (or its link) is down.
        title = f"site {b.id} down"
        what = f"No notifier at site {b.id} (last: {b.host}) has been heard. " + what
    info = AlertInfo(
        kind="interruption",
        severity="error",
        title=title,
        what=what,
        # The last beat's own time, the same at every notifier instance (store.alert_id_for).
        ts=float(b.ts),
        source_kind=b.kind,
        source_id=b.id,
        host=b.host,
        job_id=b.job_id,
        object_id=b.object_id,
        pending=b.pending or None,
        progress=progress_text(seen),
        site=b.site,
    )
    return Occurrence(fingerprint=interruption_fingerprint(b.kind, b.id), info=info)


def takeover_occurrence(seen: Seen) -> Occurrence | None:
    """A participant that now leads in place of another holder (the queue's standby taking over)."""
    b, t = seen.beat, seen.beat.took_over
    if t is None:
        return None
    where = f" at {b.site}" if b.site else ""
    before = f" at {t.previous_site}" if t.previous_site else ""
    info = AlertInfo(
        kind="takeover",
        severity="warning",
        title=f"{b.kind} taken over by {b.id}{where}",
        what=(
            f"{b.kind} {b.id} on {b.host}{where} took over from {t.previous} on "
            f"{t.previous_host or '?'}{before} at {time.strftime('%H:%M:%S', time.gmtime(t.at))} UTC."
        ),
        # The takeover's own time, the same at every notifier instance (store.alert_id_for).
        ts=float(t.at),
        source_kind=b.kind,
        source_id=b.id,
        host=b.host,
        # The thread of the site that lost the lead, where its silence is mailed.
        site=t.previous_site or b.site,
    )
    return Occurrence(fingerprint=takeover_fingerprint(b.kind, b.id, t.at), info=info)


def progress_text(seen: Seen) -> str | None:
    p = seen.beat.progress
    if p is None:
        return None
    parts = [p.stage] if p.stage else []
    if p.total:
        parts.append(f"step {p.step}/{p.total} ({100 * p.step / p.total:.0f} %)")
    if p.eta_s is not None:
        parts.append(f"ETA {p.eta_s:.0f} s")
    return ", ".join(parts) or None


def log_occurrences(batch: LogBatch, context_lines: int) -> list[Occurrence]:
    """One occurrence per distinct error fingerprint in the batch, with its count and context."""
    found: dict[str, Occurrence] = {}
    records = batch.records
    src = f"{batch.source_kind}/{batch.source_id}"
    for i, r in enumerate(records):
        if r.level < Level.ERROR:
            continue
        fp = log_fingerprint(batch.source_kind, batch.source_id, r.logger, r.level, r.message, r.exc)
        if fp in found:
            found[fp] = msgspec.structs.replace(found[fp], count=found[fp].count + 1)
            continue
        lo = max(0, i + 1 - context_lines) if context_lines else i + 1
        ctx = [
            ContextLine(ts=c.ts, level=c.level, message=c.message, source=src, seq=c.seq)
            for c in records[lo : i + 1]
        ]
        first_line = (r.message.strip().splitlines() or [""])[0]
        level = "CRITICAL" if r.level >= Level.CRITICAL else "ERROR"
        title = f"{level} in {batch.source_kind} {batch.source_id}: {first_line[:120]}"
        found[fp] = Occurrence(
            fingerprint=fp,
            info=AlertInfo(
                kind="log_error",
                severity="critical" if r.level >= Level.CRITICAL else "error",
                title=title,
                what=r.message[:4000],
                ts=r.ts,
                source_kind=batch.source_kind,
                source_id=batch.source_id,
                host=r.host or batch.host,
                job_id=r.job_id or batch.job_id,
                object_id=r.object_id or batch.object_id,
                logger=r.logger or None,
                exc=r.exc,
                context=ctx,
            ),
        )
    return list(found.values())


def job_occurrence(ev: JobFailed | JobDead) -> Occurrence:
    if isinstance(ev, JobDead):
        info = AlertInfo(
            kind="job_dead",
            severity="critical",
            title=f"job {ev.job_id} ({ev.object_id}) is dead after {ev.attempt} attempt(s)",
            what=f"Job {ev.job_id} for {ev.object_id} gave up after {ev.attempt} attempt(s): {ev.error}",
            ts=ev.ts,
            source_kind="job",
            source_id=ev.job_id,
            job_id=ev.job_id,
            object_id=ev.object_id,
        )
        return Occurrence(fingerprint=job_fingerprint(ev.job_id, "dead"), info=info)
    retry = f"; retry in {ev.retry_in_s:.0f} s" if ev.will_retry and ev.retry_in_s is not None else ""
    step = f" in step {ev.step}" if ev.step else ""
    info = AlertInfo(
        kind="job_failed",
        severity="warning" if ev.will_retry else "error",
        title=f"job {ev.job_id} ({ev.object_id}) failed{step}",
        what=f"Attempt {ev.attempt} of job {ev.job_id} failed{step}: {ev.error}"
        + (f" (will retry{retry})" if ev.will_retry else " (no retry)"),
        ts=ev.ts,
        source_kind="job",
        source_id=ev.job_id,
        host=ev.actor or None,
        job_id=ev.job_id,
        object_id=ev.object_id,
    )
    return Occurrence(fingerprint=job_fingerprint(ev.job_id, "failed"), info=info)
