"""The notifier service: turns errors, failed jobs and silent participants into alerts and mail.

Flow: an occurrence (an ERROR record, a failed job, a lost heartbeat) is counted
into the open alert of its fingerprint in sqlite, in the same transaction that
marks its message processed. A new alert's first mail is due ``group_wait``
later (0.25 s by default, so a burst collapses into one mail with a count); later
occurrences are summed into at most one mail per ``repeat_interval``. Due mails
are written into the outbox (one row per recipient, webhook and bus event) in
the transaction that records them as mailed; the outbox sender delivers them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Mapping
from pathlib import Path

import msgspec
import nats.errors

from foto3d.libs.bus.consume import Delivery, PullConsumer
from foto3d.libs.heartbeat import Seen
from foto3d.libs.service import Health, NavLink, Service, ServiceContext
from foto3d.libs.tasks import cancel_and_wait
from foto3d.proto.api import ServiceError
from foto3d.proto.base import tolerant_decoder
from foto3d.proto.jobs import JobDead, JobFailed
from foto3d.proto.logs import LOG_QUERY, Level, LogBatch, LogQuery, LogQueryReply
from foto3d.services.notifier import pages
from foto3d.services.notifier.compose import MailKind, event_for, messages_for
from foto3d.services.notifier.delivery import OutboxSender
from foto3d.services.notifier.model import (
    AlertInfo,
    ContextLine,
    Occurrence,
    interruption_fingerprint,
    job_fingerprint,
    log_fingerprint,
)
from foto3d.services.notifier.routing import route
from foto3d.services.notifier.settings import SETTINGS, NotifierConfig
from foto3d.services.notifier.store import AlertRow, NewMail, Store
from foto3d.services.notifier.topology import WATCH_JOBS, WATCH_LOGS
from foto3d.services.notifier.watch import HeartbeatWatch

log = logging.getLogger(__name__)

_batch_json = msgspec.json.Decoder(LogBatch)
# Only failed and dead jobs matter here; other (and future) event types pass untouched.
decode_job_event = tolerant_decoder(JobFailed | JobDead)


def decode_batch(data: bytes, _headers: Mapping[str, str]) -> LogBatch:
    """Log batches travel as msgspec JSON, the one encoding of the log path (docs/benchmarks.md)."""
    return _batch_json.decode(data)


ERROR_KINDS = ("log_error", "job_failed", "job_dead")


class Notifier(Service):
    name = "notifier"
    consumer_specs = (WATCH_LOGS, WATCH_JOBS)
    description = "Alerts by email and webhook on errors, failed jobs and interruptions"

    def __init__(self) -> None:
        super().__init__()
        self.cfg: NotifierConfig | None = None
        self.store: Store | None = None
        self.sender: OutboxSender | None = None
        self.watch: HeartbeatWatch | None = None
        self.outbox_dir = Path()
        self._consumers: list[PullConsumer[LogBatch] | PullConsumer[JobFailed | JobDead | None]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._open_count = 0
        self._context_misses = 0

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self, ctx: ServiceContext) -> None:
        cfg = NotifierConfig.resolve(SETTINGS.load(ctx.settings))
        self.cfg = cfg
        data = ctx.data_dir(self.name)
        self.outbox_dir = data / "outbox"
        store = await Store.open(data / "notifier.sqlite")
        store.repeat_interval = cfg.section.repeat_interval
        self.store = store
        self.sender = OutboxSender(store, cfg, ctx.bus, self.outbox_dir)
        await self.sender.start()
        alerted = set()
        for a in await store.open_alerts("interruption"):
            _, kind, pid = a.fingerprint.split(":", 2)
            alerted.add((kind, pid))
        self.watch = HeartbeatWatch(
            ctx.bus, self._on_lost, self._on_back, alerted, quiet_kinds=frozenset(cfg.section.quiet_kinds)
        )
        self.ctx = ctx
        await self.watch.start()
        logs = PullConsumer[LogBatch](
            bus=ctx.bus,
            spec=WATCH_LOGS,
            decode=decode_batch,
            handler=self._on_logs,
            fetch_timeout=0.5,
        )
        jobs = PullConsumer[JobFailed | JobDead | None](
            bus=ctx.bus,
            spec=WATCH_JOBS,
            decode=decode_job_event,
            handler=self._on_jobs,
            fetch_timeout=0.5,
        )
        self._consumers = [logs, jobs]
        for c in self._consumers:
            c.start()
        self._open_count = len(await store.open_alerts())
        self._task = asyncio.create_task(self._schedule(), name="notifier:schedule")

    async def stop(self) -> None:
        for c in self._consumers:
            await c.stop()
        self._consumers = []
        if self.watch:
            await self.watch.stop()
        if self._task:
            await cancel_and_wait(self._task)
            self._task = None
        if self.sender:
            await self.sender.stop()
        if self.store:
            await self.store.close()
            self.store = None

    def _parts(self) -> tuple[NotifierConfig, Store, OutboxSender]:
        if self.cfg is None or self.store is None or self.sender is None:
            raise RuntimeError("notifier used before start()")
        return self.cfg, self.store, self.sender

    # -- inputs -------------------------------------------------------------------------

    async def _on_logs(self, deliveries: list[Delivery[LogBatch]]) -> None:
        cfg, store, _ = self._parts()
        for d in deliveries:
            occurrences = log_occurrences(d.event, cfg.section.context_lines)
            if occurrences:
                await store.record(occurrences, f"logs:{d.event.batch_id}", cfg.section.group_wait)
                self._wake.set()

    async def _on_jobs(self, deliveries: list[Delivery[JobFailed | JobDead | None]]) -> None:
        cfg, store, _ = self._parts()
        for d in deliveries:
            ev = d.event
            if ev is None:
                continue
            key = f"jobs:{d.headers.get('Nats-Msg-Id') or d.stream_seq}"
            await store.record([job_occurrence(ev)], key, cfg.section.group_wait)
            self._wake.set()

    async def _on_lost(self, seen: Seen) -> None:
        _, store, _ = self._parts()
        b = seen.beat
        what = (
            f"No heartbeat from {b.kind} {b.id} on {b.host} for {seen.age():.1f} s "
            f"(grace {seen.grace:g} s, last seen {time.strftime('%H:%M:%S', time.gmtime(seen.seen_at))} UTC)."
        )
        if b.pending:
            what += f" It holds {b.pending} item(s) of unsent work."
        info = AlertInfo(
            kind="interruption",
            severity="error",
            title=f"{b.kind} {b.id} is silent",
            what=what,
            ts=time.time(),
            source_kind=b.kind,
            source_id=b.id,
            host=b.host,
            job_id=b.job_id,
            object_id=b.object_id,
            pending=b.pending or None,
            progress=progress_text(seen),
        )
        await store.record(
            [Occurrence(fingerprint=interruption_fingerprint(b.kind, b.id), info=info)], None, 0.0
        )
        self._wake.set()

    async def _on_back(self, seen: Seen, reason: str) -> None:
        cfg, store, sender = self._parts()
        alert = await store.open_alert(interruption_fingerprint(seen.beat.kind, seen.beat.id))
        if alert is None:
            return
        closed = dataclasses.replace(alert, state="resolved", resolved_at=time.time())
        mails: list[NewMail] = []
        if alert.mails > 0:  # nobody heard of the problem otherwise
            mails = messages_for(
                closed,
                "resolved",
                route(cfg, alert.info),
                smtp=cfg.smtp is not None,
                sender=cfg.mail_from,
                base_url=self.context.base_url,
                count=alert.count,
                reason=reason,
            )
        ev = event_for(closed, "resolved", alert.count, reason)
        if await store.resolve(alert.id, reason, [*mails, *([ev] if ev else [])]):
            self._open_count = max(0, self._open_count - 1)
        sender.wake()

    # -- mail scheduling ----------------------------------------------------------------

    async def _schedule(self) -> None:
        _, store, sender = self._parts()
        last_cleanup = 0.0
        while True:
            self._wake.clear()
            try:
                due = await store.due_alerts(time.time())
                if due:
                    done = await asyncio.gather(*(self._mail(a) for a in due))
                    await store.mailed(list(done))
                    self._open_count += sum(1 for a in due if a.mails == 0)
                    sender.wake()
                    continue
                if time.monotonic() - last_cleanup > 5.0:
                    last_cleanup = time.monotonic()
                    await self._cleanup()
                nxt = await store.next_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("notifier: scheduling mails failed; trying again")
                nxt = time.time() + 1.0
            timeout = 5.0 if nxt is None else min(5.0, max(0.005, nxt - time.time()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _mail(self, alert: AlertRow) -> tuple[AlertRow, int, list[NewMail]]:
        """Write an alert's due messages (recorded by the caller, together with the others due)."""
        cfg, _, _ = self._parts()
        kind: MailKind = "raised" if alert.mails == 0 else "repeat"
        if kind == "raised":
            alert = dataclasses.replace(
                alert, info=msgspec.structs.replace(alert.info, context=await self._context(alert.info))
            )
        mails = messages_for(
            alert,
            kind,
            route(cfg, alert.info),
            smtp=cfg.smtp is not None,
            sender=cfg.mail_from,
            base_url=self.context.base_url,
            count=alert.count,
            latest=alert.last_message,
        )
        ev = event_for(alert, kind, alert.count)
        return alert, alert.count, [*mails, *([ev] if ev else [])]

    async def _context(self, info: AlertInfo) -> list[ContextLine]:
        """The log lines up to the event: from the log store, merged with what we already hold."""
        cfg, _, _ = self._parts()
        n = cfg.section.context_lines
        if n == 0:
            return []
        if info.job_id:
            q = LogQuery(job_id=info.job_id, until=info.ts, around_ts=info.ts, limit=n)
        elif info.source_kind and info.source_id:
            q = LogQuery(
                source_kind=info.source_kind,
                source_id=info.source_id,
                until=info.ts,
                around_ts=info.ts,
                limit=n,
            )
        else:
            return list(info.context)
        lines = {(c.source, c.seq if c.seq is not None else c.ts, c.message): c for c in info.context}
        try:
            reply = await self.context.bus.call(LOG_QUERY, q, timeout=cfg.section.context_timeout)
        except (
            TimeoutError,
            nats.errors.Error,
            ServiceError,
            msgspec.DecodeError,
            msgspec.ValidationError,
        ) as exc:
            self._context_misses += 1
            log.debug("log store did not answer (%r); using the lines at hand", exc)
            reply = LogQueryReply(records=[])
        for r in reply.records:
            src = f"{r.source_kind}/{r.source_id}"
            lines.setdefault(
                (src, r.seq, r.message),
                ContextLine(ts=r.ts, level=r.level, message=r.message, source=src, seq=r.seq),
            )
        return sorted(lines.values(), key=lambda c: (c.ts, c.seq or 0))[-n:]

    async def _cleanup(self) -> None:
        cfg, store, sender = self._parts()
        now = time.time()
        for alert in await store.quiet_alerts(now - cfg.resolve_after, ERROR_KINDS):
            closed = dataclasses.replace(alert, state="resolved", resolved_at=now)
            ev = event_for(closed, "resolved", alert.count, "quiet")
            if await store.resolve(alert.id, "quiet", [ev] if ev else []):
                self._open_count = max(0, self._open_count - 1)
        await store.forget_processed(now - 7 * 86_400)
        sender.wake()

    # -- surface ------------------------------------------------------------------------

    def health(self) -> Health:
        if self.cfg is None or self.sender is None:
            return Health("starting")
        h = self.sender.health
        mode = self.cfg.smtp.describe() if self.cfg.smtp else f"local outbox {self.outbox_dir}"
        extra: dict[str, object] = {
            "mail": mode,
            "open_alerts": self._open_count,
            "sent": h.sent,
            "waiting": h.waiting,
            "rejected": h.rejected,
            "participants": len(self.watch.participants) if self.watch else 0,
            "malformed_heartbeats": self.watch.malformed if self.watch else 0,
        }
        if h.failing_since is not None:
            since = time.strftime("%H:%M:%S", time.gmtime(h.failing_since))
            return Health(
                "degraded",
                f"cannot send alerts since {since} UTC ({h.last_error}); {h.waiting} waiting",
                extra,
            )
        if h.rejected:
            return Health("degraded", f"{h.rejected} message(s) refused for good: {h.last_error}", extra)
        return Health("ok", mode, extra)

    def banner(self) -> list[str]:
        if self.cfg is None:
            return []
        if self.cfg.smtp is None:
            return [
                "alerts: no SMTP server configured (set FOTO3D_SMTP_URL); alert mails are written to "
                f"{self.outbox_dir} and shown on the Alerts page"
            ]
        to = ", ".join(self.cfg.default_to) or "nobody by default (no FOTO3D_ALERT_TO)"
        return [f"alerts: mail via {self.cfg.smtp.describe()} to {to}"]

    def routes(self) -> list[pages.RouteDef]:
        return pages.routes(self)

    def nav(self) -> list[NavLink]:
        return [NavLink("Status", "/status", 60), NavLink("Alerts", "/alerts", 61)]


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
