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
from pathlib import Path

import msgspec

from foto3d.libs.bus.consume import Delivery, PullConsumer
from foto3d.libs.heartbeat import HeartbeatSender, Seen
from foto3d.libs.lease import LeaderLease, LeaseHolder
from foto3d.libs.logsdk.service_logs import not_shipped
from foto3d.libs.service import Health, NavLink, Service, ServiceContext
from foto3d.libs.tasks import cancel_and_wait
from foto3d.proto.auth import StaffNotice
from foto3d.proto.jobs import JobDead, JobFailed
from foto3d.proto.logs import LogBatch
from foto3d.services.notifier import pages
from foto3d.services.notifier.compose import MailKind, event_for, messages_for
from foto3d.services.notifier.delivery import OutboxSender
from foto3d.services.notifier.ledger import NOTIFIER_LEASE, SENT_LEDGER, SentLedger
from foto3d.services.notifier.log_context import LogContext
from foto3d.services.notifier.metrics import NotifierMetrics
from foto3d.services.notifier.model import (
    interruption_fingerprint,
)
from foto3d.services.notifier.notices import decode_notice, notice_mail
from foto3d.services.notifier.occurrences import (
    SITE_KIND,
    decode_batch,
    decode_job_event,
    interruption_occurrence,
    job_occurrence,
    log_occurrences,
    takeover_occurrence,
)
from foto3d.services.notifier.parts import NotifierParts
from foto3d.services.notifier.routing import route
from foto3d.services.notifier.settings import SETTINGS, NotifierConfig
from foto3d.services.notifier.sites import CheckIn
from foto3d.services.notifier.starved import NO_TRAINER_FINGERPRINT, Starvation, no_trainer_occurrence
from foto3d.services.notifier.store import AlertRow, NewMail, Store
from foto3d.services.notifier.topology import WATCH_JOBS, WATCH_LOGS, WATCH_NOTICES, instance_consumers
from foto3d.services.notifier.watch import HeartbeatWatch

log = logging.getLogger(__name__)

ERROR_KINDS = ("log_error", "job_failed", "job_dead")
# Alerts that are news, not a lasting problem: resolved quietly like errors gone quiet.
QUIET_KINDS = (*ERROR_KINDS, "takeover")
LEASE_RENEW_S = 1.5


class Notifier(Service):
    name = "notifier"
    consumer_specs = (WATCH_LOGS, WATCH_JOBS, WATCH_NOTICES)
    bucket_specs = (NOTIFIER_LEASE, SENT_LEDGER)
    description = "Alerts by email and webhook on errors, failed jobs and interruptions"

    def __init__(self) -> None:
        super().__init__()
        self.cfg: NotifierConfig | None = None
        self.store: Store | None = None
        self.sender: OutboxSender | None = None
        self.watch: HeartbeatWatch | None = None
        self.outbox_dir = Path()
        self._consumers: list[
            PullConsumer[LogBatch] | PullConsumer[JobFailed | JobDead | None] | PullConsumer[StaffNotice]
        ] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._open_count = 0
        self._log_context: LogContext | None = None
        self.lease: LeaderLease | None = None
        self.ledger: SentLedger | None = None
        self._follower: asyncio.Task[None] | None = None
        self.site_beacon: HeartbeatSender | None = None
        self.checkin: CheckIn | None = None
        self._page_parts: NotifierParts | None = None

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self, ctx: ServiceContext) -> None:
        cfg = NotifierConfig.resolve(SETTINGS.load(ctx.settings))
        self.cfg = cfg
        data = ctx.data_dir(self.name)
        self.outbox_dir = data / "outbox"
        store = await Store.open(data / "notifier.sqlite")
        store.repeat_interval = cfg.section.repeat_interval
        self.store = store
        NotifierMetrics(store).install(ctx.metrics)
        instance = cfg.section.instance or self.instance_id
        self.ledger = SentLedger(ctx.bus, instance)
        self.sender = OutboxSender(store, cfg, ctx.bus, self.outbox_dir, ledger=self.ledger)
        self._log_context = LogContext(ctx.bus, cfg.section.context_lines, cfg.section.context_timeout)
        specs = await instance_consumers(ctx.bus, cfg.section.instance)
        alerted = set()
        for a in await store.open_alerts("interruption"):
            _, kind, pid = a.fingerprint.split(":", 2)
            alerted.add((kind, pid))
        self.watch = HeartbeatWatch(
            ctx.bus,
            self._on_lost,
            self._on_back,
            alerted,
            quiet_kinds=frozenset(cfg.section.quiet_kinds),
            no_trainer_wait=cfg.section.no_trainer_wait,
            on_starved=self._on_starved,
            on_fed=self._on_fed,
            starved_alerted=await store.open_alert(NO_TRAINER_FINGERPRINT) is not None,
            on_takeover=self._on_takeover,
        )
        self.ctx = ctx
        await self.watch.start()
        self._page_parts = NotifierParts(
            store=store, watch=self.watch, health=self.health, mail=self._mail_mode()
        )
        logs = PullConsumer[LogBatch](
            bus=ctx.bus,
            spec=specs[WATCH_LOGS.durable],
            decode=decode_batch,
            handler=self._on_logs,
            fetch_timeout=0.5,
        )
        jobs = PullConsumer[JobFailed | JobDead | None](
            bus=ctx.bus,
            spec=specs[WATCH_JOBS.durable],
            decode=decode_job_event,
            handler=self._on_jobs,
            fetch_timeout=0.5,
        )
        notices = PullConsumer[StaffNotice](
            bus=ctx.bus,
            spec=specs[WATCH_NOTICES.durable],
            decode=decode_notice,
            handler=self._on_notices,
            fetch_timeout=0.5,
        )
        self._consumers = [logs, jobs, notices]
        with not_shipped():  # its failures must not become log records it then consumes
            logs.start()
        jobs.start()
        notices.start()
        self._open_count = len(await store.open_alerts())
        self._task = asyncio.create_task(self._schedule(), name="notifier:schedule")
        self._follower = asyncio.create_task(self._follow(), name="notifier:follow")
        holder = LeaseHolder(instance=instance, host=ctx.host, since=time.time())
        self.lease = LeaderLease(ctx.bus, NOTIFIER_LEASE, holder, LEASE_RENEW_S, self._on_leadership)
        self.lease.start()
        if ctx.settings.site:
            self.site_beacon = HeartbeatSender(
                ctx.bus,
                SITE_KIND,
                ctx.settings.site,
                host=ctx.host,
                interval=cfg.section.site_beat,
                grace=cfg.section.site_grace,
                site=ctx.settings.site,
            )
            self.site_beacon.start()
        if cfg.section.checkin_url:
            self.checkin = CheckIn(ctx.bus, cfg.section.checkin_url, cfg.section.checkin_every, self._failing)
            self.checkin.start()

    # -- instances ----------------------------------------------------------------------

    async def _on_leadership(self, leading: bool) -> None:
        """Only the lease holder delivers; every instance keeps its projection and outbox warm."""
        if self.sender is None:
            return
        if leading:
            await self.sender.start()
        else:
            await self.sender.stop()

    async def _follow(self) -> None:
        """While standing by, drop from the outbox what the leader reports delivered."""
        while True:
            await asyncio.sleep(1.0)
            if self.lease is None or self.lease.is_leader or self.store is None or self.ledger is None:
                continue
            try:
                await self.ledger.follow(self.store)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.info("notifier: following the sent ledger failed (%r); trying again", exc)

    def _failing(self) -> str | None:
        """Why this instance cannot deliver alerts now (only the leader delivers)."""
        h = self.sender.health if self.sender else None
        leading = self.lease is not None and self.lease.is_leader
        if leading and h is not None and h.failing_since is not None:
            return f"cannot send alerts: {h.last_error}"
        return None

    async def stop(self) -> None:
        if self.checkin:
            await self.checkin.stop()
            self.checkin = None
        if self.site_beacon:
            await self.site_beacon.stop()  # with a goodbye: a planned stop is no site outage
            self.site_beacon = None
        for c in self._consumers:
            await c.stop()
        self._consumers = []
        if self.watch:
            await self.watch.stop()
        if self._task:
            await cancel_and_wait(self._task)
            self._task = None
        if self.lease:
            await self.lease.stop()
            self.lease = None
        await cancel_and_wait(self._follower)
        self._follower = None
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

    async def _on_notices(self, deliveries: list[Delivery[StaffNotice]]) -> None:
        cfg, store, sender = self._parts()
        for d in deliveries:
            mail = notice_mail(d.event, cfg.mail_from, smtp=cfg.smtp is not None)
            await store.add_messages(f"notice:{d.event.notice_id}", [mail])
        if deliveries:
            sender.wake()

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
        await store.record([interruption_occurrence(seen)], None, 0.0)
        self._wake.set()

    async def _on_takeover(self, seen: Seen) -> None:
        _, store, _ = self._parts()
        occ = takeover_occurrence(seen)
        if occ is not None:
            # Keyed by the takeover: a restarted instance reading the same beats counts it once.
            await store.record([occ], occ.fingerprint, 0.0)
            self._wake.set()

    async def _on_starved(self, st: Starvation) -> None:
        cfg, store, _ = self._parts()
        since = st.since if st.since is not None else time.time()
        await store.record([no_trainer_occurrence(st.queued, since, cfg.section.no_trainer_wait)], None, 0.0)
        self._wake.set()

    async def _on_fed(self, reason: str) -> None:
        await self._close(NO_TRAINER_FINGERPRINT, reason)

    async def _on_back(self, seen: Seen, reason: str) -> None:
        await self._close(interruption_fingerprint(seen.beat.kind, seen.beat.id), reason)

    async def _close(self, fingerprint: str, reason: str) -> None:
        """Resolve the open alert of ``fingerprint`` with a closing mail if anyone heard of it."""
        cfg, store, sender = self._parts()
        alert = await store.open_alert(fingerprint)
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
        cfg, store, _ = self._parts()
        kind: MailKind = "raised" if alert.mails == 0 else "repeat"
        absorbed = await store.story_of(alert.id)
        if absorbed:
            alert = dataclasses.replace(alert, related=tuple(f"{a.title} (×{a.count})" for a in absorbed))
        if kind == "raised" and self._log_context is not None:
            context = await self._log_context.around(alert.info)
            alert = dataclasses.replace(alert, info=msgspec.structs.replace(alert.info, context=context))
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

    async def _cleanup(self) -> None:
        cfg, store, sender = self._parts()
        now = time.time()
        for alert in await store.quiet_alerts(now - cfg.resolve_after, QUIET_KINDS):
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
        mode = self._mail_mode()
        extra: dict[str, object] = {
            "mail": mode,
            "open_alerts": self._open_count,
            "sent": h.sent,
            "waiting": h.waiting,
            "rejected": h.rejected,
            "participants": len(self.watch.participants) if self.watch else 0,
            "malformed_heartbeats": self.watch.malformed if self.watch else 0,
            "role": "leader" if self.lease is not None and self.lease.is_leader else "standby",
        }
        if self.checkin is not None:
            extra["checkins"] = self.checkin.health.sent
            extra["checkin_failures"] = self.checkin.health.failed
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

    def _mail_mode(self) -> str:
        """Where alert mail goes: the SMTP server, or the local outbox folder."""
        assert self.cfg is not None, "notifier not started"
        return self.cfg.smtp.describe() if self.cfg.smtp else f"local outbox {self.outbox_dir}"

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
        if self._page_parts is None:
            raise RuntimeError("notifier used before start()")
        return pages.routes(self._page_parts)

    def nav(self) -> list[NavLink]:
        return [NavLink("Status", "/status", 60), NavLink("Alerts", "/alerts", 61)]
