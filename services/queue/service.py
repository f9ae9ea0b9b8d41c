"""The queue service: job table, leader lease, submissions, operator commands, jobs page.

Every instance follows JOB_EVENTS into its own sqlite job table and answers
queries from it. One instance, the holder of the ``queue-leader`` lease, also
takes submissions (request/reply and the SUBMISSIONS stream), dispatches work,
decides retries and deaths and handles MaxDeliver advisories; the others
forward commands to it and take over when its lease runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import nats.errors
from aiohttp import web
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from foto3d.libs.bus.consume import Delivery, PullConsumer
from foto3d.libs.bus.micro import Endpoint, plain_handler, serve
from foto3d.libs.heartbeat import HeartbeatSender
from foto3d.libs.service import Health, NavLink, Service, ServiceContext
from foto3d.libs.tasks import cancel_and_wait
from foto3d.libs.tracing.consume import consume_span
from foto3d.proto.api import (
    BAD_REQUEST,
    UNAVAILABLE,
    Api,
    ServiceError,
)
from foto3d.proto.heartbeat import TakeOver
from foto3d.proto.jobs import (
    CANCEL,
    GET,
    LIST,
    REQUEUE,
    SUBMIT,
    JobActionReply,
    JobRef,
    JobState,
    SubmissionError,
    SubmitReply,
    SubmitRequest,
    decode_submission,
    leader_subject,
)
from foto3d.services.queue.api import JobsApi
from foto3d.services.queue.leader import LeaderDuties
from foto3d.services.queue.lease import LeaderLease, LeaseHolder
from foto3d.services.queue.metrics import QueueMetrics
from foto3d.services.queue.pages import JobsPages
from foto3d.services.queue.parts import QueueParts
from foto3d.services.queue.settings import SETTINGS, QueueSettings
from foto3d.services.queue.store import JobStore
from foto3d.services.queue.tail import EventTail
from foto3d.services.queue.topology import ADVISORIES, LEADER_LEASE, SUBMISSIONS

log = logging.getLogger(__name__)


class QueueService(Service):
    name = "queue"
    consumer_specs = (SUBMISSIONS, ADVISORIES)
    bucket_specs = (LEADER_LEASE,)
    description = "Training jobs: submissions, state machine, retries, dead letters, failover."

    def __init__(self) -> None:
        super().__init__()
        self.cfg = QueueSettings()
        self.store: JobStore | None = None
        self.tail: EventTail | None = None
        self.lease: LeaderLease | None = None
        self.duties: LeaderDuties | None = None
        self._parts: QueueParts | None = None
        self._changes: asyncio.Queue[list[str]] = asyncio.Queue()
        self._leader_tasks: list[asyncio.Task[None]] = []
        self._leader_subs: list[Subscription] = []
        self._consumers: list[PullConsumer[Any]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._transition = asyncio.Lock()
        self.took_over_at: float | None = None
        self._beating: asyncio.Task[None] | None = None
        self._leading = asyncio.Event()

    # -- lifecycle -------------------------------------------------------------

    async def start(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.cfg = SETTINGS.load(ctx.settings)
        self.store = JobStore(ctx.data_dir("queue") / "jobs.sqlite")
        await self.store.open()
        QueueMetrics(self.store).install(ctx.metrics)
        self.tail = EventTail(ctx.bus, self.store, self._on_change, self.instance_id)
        self.duties = LeaderDuties(ctx.bus, self.store, self.tail, self.cfg, f"queue@{ctx.host}")
        self.tail.start()
        await self.tail.catch_up(timeout=10.0)
        holder = LeaseHolder(
            instance=self.instance_id, host=ctx.host, since=time.time(), site=ctx.settings.site
        )
        self.lease = LeaderLease(ctx.bus, holder, self.cfg.renew_s, self._on_leadership)
        self.lease.start()
        self._parts = QueueParts(store=self.store, lease=self.lease, command=self.command, ctx=ctx)
        # Start answering once the first claim went through (leader or standby known).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.lease.round_done.wait(), 10.0)
        if self.lease.is_leader:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._leading.wait(), 10.0)
        self._beating = asyncio.create_task(self._heartbeats(), name="queue:heartbeat")

    async def stop(self) -> None:
        # The goodbye beat goes out before the lease is given up, so the notifier knows that a
        # standby taking over next follows a planned stop, not a silence.
        await cancel_and_wait(self._beating)
        self._beating = None
        if self.lease is not None:
            await self.lease.stop()
        await self._lead(False)
        await cancel_and_wait(*self._tasks)
        self._tasks.clear()
        if self.tail is not None:
            await self.tail.stop()
        if self.store is not None:
            await self.store.close()

    def health(self) -> Health:
        if self.store is None or self.lease is None:
            return Health("starting")
        leader = self.lease.leader.instance if self.lease.leader else None
        return Health(
            "ok" if leader else "degraded",
            "leader" if self.lease.is_leader else f"standby (leader: {leader or 'none'})",
            {
                "role": "leader" if self.lease.is_leader else "standby",
                "leader": leader,
                "applied_seq": self.store.last_seq,
            },
        )

    def banner(self) -> list[str]:
        return [
            f"up to {self.cfg.max_attempts} attempts per job, retry backoff from {self.cfg.backoff_s:g} s"
        ]

    # -- leadership ------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        return bool(self.lease and self.lease.is_leader)

    async def _on_change(self, job_ids: list[str]) -> None:
        if self.is_leader:
            self._changes.put_nowait(job_ids)

    async def _on_leadership(self, leading: bool) -> None:
        # Taking over may take seconds; the lease loop must keep renewing meanwhile.
        task = asyncio.create_task(self._lead(leading), name="queue:transition")
        self._tasks.append(task)
        self._tasks[:] = [t for t in self._tasks if not t.done() or t is task]

    async def _lead(self, leading: bool) -> None:
        async with self._transition:
            if leading and not self._leader_tasks:
                await self._become_leader()
            elif not leading and self._leader_tasks:
                await self._step_down()

    async def _become_leader(self) -> None:
        assert self.tail is not None and self.duties is not None
        ctx = self.context
        # Take over with the full state: everything the old leader published is applied first.
        for _ in range(3):
            if await self.tail.catch_up(timeout=8.0):
                break
            await asyncio.sleep(0.5)
        self._changes = asyncio.Queue()
        self._leader_tasks = [
            asyncio.create_task(self._react_loop(), name="queue:react"),
            asyncio.create_task(self._retry_loop(), name="queue:retries"),
        ]
        for command in (SUBMIT, CANCEL, REQUEUE):
            self._leader_subs.append(
                await ctx.bus.nc.subscribe(leader_subject(command), cb=self._forwarded(command))
            )
        duties = self.duties
        self._consumers = [
            PullConsumer(
                bus=ctx.bus,
                spec=SUBMISSIONS,
                decode=lambda data, headers: _stream_submission(data, headers),
                handler=self._stream_submissions,
                batch=64,
            ),
            PullConsumer.for_type(
                ctx.bus,
                ADVISORIES,
                dict[str, Any],
                self._advisories,
                batch=16,
            ),
        ]
        for c in self._consumers:
            c.start()
        for attempt in range(1, 11):
            try:
                await duties.take_over()
                break
            except (TimeoutError, nats.errors.Error) as exc:
                # The cluster may still be electing stream leaders; every step is idempotent.
                log.warning("queue: taking over, attempt %d failed (%r); trying again", attempt, exc)
                await asyncio.sleep(1.0)
        self.took_over_at = time.time()
        self._leading.set()

    async def _step_down(self) -> None:
        self._leading.clear()
        for sub in self._leader_subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        self._leader_subs.clear()
        for c in self._consumers:
            c.request_stop()
        await cancel_and_wait(*self._leader_tasks)
        self._leader_tasks.clear()
        # All at once: each stop may wait for its fetch to return, and a quick step-down is a
        # quick re-claim when the lease was lost only to a stall.
        await asyncio.gather(
            *(asyncio.wait_for(c.stop(), 3.0) for c in self._consumers), return_exceptions=True
        )
        self._consumers.clear()

    async def _react_loop(self) -> None:
        assert self.duties is not None
        while True:
            ids = await self._changes.get()
            try:
                await self.duties.react(ids)
            except (TimeoutError, nats.errors.Error) as exc:
                log.warning("queue: deciding on %s failed (%r); the next takeover or event retries", ids, exc)

    async def _retry_loop(self) -> None:
        assert self.duties is not None
        while True:
            self.duties.retry_wakeup.clear()
            try:
                nxt = await self.duties.run_due_retries()
            except (TimeoutError, nats.errors.Error) as exc:
                log.warning("queue: queuing retries failed (%r)", exc)
                nxt = time.time() + 1.0
            wait = 5.0 if nxt is None else max(0.01, min(5.0, nxt - time.time()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.duties.retry_wakeup.wait(), wait)

    async def _stream_submissions(self, batch: list[Delivery[SubmitRequest]]) -> None:
        assert self.duties is not None
        for d in batch:
            req = d.event
            if req.request_id is None:
                # No id from the sender: the stream position identifies it across redeliveries.
                req = msgspec.structs.replace(req, request_id=f"submissions:{d.stream_seq}")
            try:
                with consume_span(d.subject, d.headers, name="submission"):
                    await self.duties.submit(req, actor=req.submitted_by or "rig")
            except ServiceError as exc:
                # Nobody waits for a reply on the stream path: keep it with the reason.
                await self._consumers[0].dead_letter(d.msg, f"rejected: {exc.description}")

    async def _advisories(self, batch: list[Delivery[dict[str, Any]]]) -> None:
        assert self.duties is not None
        for d in batch:
            await self.duties.max_deliveries(d.event)

    async def _heartbeats(self) -> None:
        """A ``queue`` heartbeat per instance, carrying how many jobs wait (read fresh each beat)."""
        ctx = self.context
        queued = 0
        sender = HeartbeatSender(
            ctx.bus,
            "queue",
            self.instance_id,
            host=ctx.host,
            version=self.version,
            interval=self.cfg.heartbeat_s,
            state_fn=lambda: {"pending": queued, "took_over": self._took_over()},
            lineage="queue",
            site=ctx.settings.site,
        )
        try:
            while True:
                try:
                    assert self.store is not None
                    queued = (await self.store.counts()).get(JobState.QUEUED.value, 0)
                except OSError as exc:
                    log.debug("queue heartbeat without a count: %r", exc)
                await sender.beat()
                await asyncio.sleep(self.cfg.heartbeat_s)
        finally:
            # Cancelled by stop(): a planned stop says goodbye, so its silence is no interruption.
            await sender.stop(clean=True)

    def _took_over(self) -> TakeOver | None:
        """While leading after another holder: whom this instance took the queue over from."""
        lease = self.lease
        prev = lease.previous if lease is not None and lease.is_leader else None
        if prev is None or lease is None or lease.acquired_at is None:
            return None
        return TakeOver(
            at=lease.acquired_at, previous=prev.instance, previous_host=prev.host, previous_site=prev.site
        )

    # -- commands (leader) and forwarding (standby) ------------------------------

    async def _here(self, command: Api[Any, Any], body: Any) -> Any:
        """Run a command on this instance, which leads."""
        duties = self.duties
        assert duties is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._leading.wait(), 10.0)
        if command is SUBMIT:
            return await duties.submit(body)
        if command is CANCEL:
            return await duties.cancel(body.job_id, body.reason, body.actor)
        return await duties.requeue(body.job_id, body.actor)

    async def command(self, command: Api[Any, Any], body: Any) -> Any:
        """Run a command here if leading, else on the leader; UNAVAILABLE when there is none."""
        if self.is_leader:
            return await self._here(command, body)
        try:
            return await self.context.bus.request(leader_subject(command), body, command.reply, timeout=5.0)
        except (TimeoutError, nats.errors.NoRespondersError, nats.errors.TimeoutError):
            raise ServiceError(
                UNAVAILABLE, "no queue leader is reachable right now (a failover takes up to 10 s); try again"
            ) from None

    def _forwarded(self, command: Api[Any, Any]) -> Callable[[Msg], Awaitable[None]]:
        """The leader's handler of commands a standby forwards: answered as the API answers."""

        async def here(body: Any) -> Any:
            return await self._here(command, body)

        return plain_handler(command, here)

    # -- endpoints (any instance) ------------------------------------------------

    @property
    def parts(self) -> QueueParts:
        """What the query endpoints and the jobs API use (built by ``start()``)."""
        assert self._parts is not None, "queue not started"
        return self._parts

    def endpoints(self) -> list[Endpoint]:
        async def submit(req: SubmitRequest) -> SubmitReply:
            reply: SubmitReply = await self.command(SUBMIT, req)
            return reply

        async def cancel(ref: JobRef) -> JobActionReply:
            reply: JobActionReply = await self.command(CANCEL, ref)
            return reply

        async def requeue(ref: JobRef) -> JobActionReply:
            reply: JobActionReply = await self.command(REQUEUE, ref)
            return reply

        return [
            serve(SUBMIT, submit, decode=_api_submission, actor="submitted_by"),
            serve(LIST, self.parts.list_jobs),
            serve(GET, self.parts.job_detail),
            serve(CANCEL, cancel, actor="actor"),
            serve(REQUEUE, requeue, actor="actor"),
        ]

    # -- dashboard ---------------------------------------------------------------

    def routes(self) -> list[web.AbstractRouteDef]:
        return [*JobsPages().routes(), *JobsApi(self.parts).routes()]

    def nav(self) -> list[NavLink]:
        return [NavLink("Jobs", "/jobs", order=20)]


def _stream_submission(data: bytes, headers: Any) -> SubmitRequest:
    req = decode_submission(data)
    if req.request_id is None:
        msg_id = headers.get("Nats-Msg-Id") if headers else None
        if msg_id:
            req = msgspec.structs.replace(req, request_id=str(msg_id))
    return req


def _api_submission(data: bytes) -> SubmitRequest:
    """Submissions are decoded with the readable error a person at a rig can act on."""
    try:
        return decode_submission(data)
    except SubmissionError as exc:
        raise ServiceError(BAD_REQUEST, str(exc)) from None
