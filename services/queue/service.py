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
from typing import Any

import msgspec
import nats.errors
from aiohttp import web
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.micro.request import Request

from foto3d.libs.bus import subjects
from foto3d.libs.bus.consume import Delivery, PullConsumer
from foto3d.libs.bus.micro import Endpoint
from foto3d.libs.bus.topology import consumer_spec
from foto3d.libs.service import Health, NavLink, Service, ServiceContext
from foto3d.libs.tasks import cancel_and_wait
from foto3d.proto.heartbeat import Heartbeat
from foto3d.proto.jobs import (
    JobActionReply,
    JobDetail,
    JobRef,
    JobsList,
    JobsQuery,
    JobState,
    SubmitReply,
    SubmitRequest,
)
from foto3d.services.queue import api
from foto3d.services.queue.leader import LeaderDuties
from foto3d.services.queue.lease import LeaderLease, LeaseHolder
from foto3d.services.queue.settings import SETTINGS, QueueSettings
from foto3d.services.queue.store import JobStore
from foto3d.services.queue.tail import EventTail
from foto3d.services.queue.validation import SubmissionError, decode_submission
from foto3d.services.queue.web import JobsPages

log = logging.getLogger(__name__)
_enc = msgspec.json.Encoder()


class QueueService(Service):
    name = "queue"
    description = "Training jobs: submissions, state machine, retries, dead letters, failover."

    def __init__(self) -> None:
        super().__init__()
        self.cfg = QueueSettings()
        self.store: JobStore | None = None
        self.tail: EventTail | None = None
        self.lease: LeaderLease | None = None
        self.duties: LeaderDuties | None = None
        self._changes: asyncio.Queue[list[str]] = asyncio.Queue()
        self._leader_tasks: list[asyncio.Task[None]] = []
        self._leader_subs: list[Subscription] = []
        self._consumers: list[PullConsumer[Any]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._transition = asyncio.Lock()
        self.took_over_at: float | None = None
        self._leading = asyncio.Event()

    # -- lifecycle -------------------------------------------------------------

    async def start(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.cfg = SETTINGS.load(ctx.settings)
        self.store = JobStore(ctx.data_dir("queue") / "jobs.sqlite")
        await self.store.open()
        self.tail = EventTail(ctx.bus, self.store, self._on_change, self.instance_id)
        self.duties = LeaderDuties(ctx.bus, self.store, self.tail, self.cfg, f"queue@{ctx.host}")
        self.tail.start()
        await self.tail.catch_up(timeout=10.0)
        holder = LeaseHolder(instance=self.instance_id, host=ctx.host, since=time.time())
        self.lease = LeaderLease(ctx.bus, holder, self.cfg.renew_s, self._on_leadership)
        self.lease.start()
        # Start answering once the first claim went through (leader or standby known).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.lease.round_done.wait(), 10.0)
        if self.lease.is_leader:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._leading.wait(), 10.0)
        self._tasks.append(asyncio.create_task(self._heartbeats(), name="queue:heartbeat"))

    async def stop(self) -> None:
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
        for op, handler in (
            ("submit", self._submit_bytes),
            ("cancel", self._cancel_bytes),
            ("requeue", self._requeue_bytes),
        ):
            self._leader_subs.append(await ctx.bus.nc.subscribe(api.leader(op), cb=_replying(handler)))
        duties = self.duties
        self._consumers = [
            PullConsumer(
                bus=ctx.bus,
                spec=consumer_spec("SUBMISSIONS", "queue"),
                decode=lambda data, headers: _stream_submission(data, headers),
                handler=self._stream_submissions,
                batch=64,
            ),
            PullConsumer.for_type(
                ctx.bus,
                consumer_spec("QUEUE_ADVISORIES", "queue"),
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
            c._stop.set()
        await cancel_and_wait(*self._leader_tasks)
        self._leader_tasks.clear()
        for c in self._consumers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(c.stop(), 3.0)
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
            reply = await self.duties.submit(req, actor=req.submitted_by or "rig")
            if not reply.ok:
                # Nobody waits for a reply on the stream path: keep it with the reason.
                await self._consumers[0].dead_letter(d.msg, f"rejected: {reply.error}")

    async def _advisories(self, batch: list[Delivery[dict[str, Any]]]) -> None:
        assert self.duties is not None
        for d in batch:
            await self.duties.max_deliveries(d.event)

    async def _heartbeats(self) -> None:
        ctx = self.context
        while True:
            try:
                assert self.store is not None
                counts = await self.store.counts()
                hb = Heartbeat(
                    kind="queue",
                    id=self.instance_id,
                    host=ctx.host,
                    version=self.version,
                    ts=time.time(),
                    interval_s=self.cfg.heartbeat_s,
                    pending=counts.get(JobState.QUEUED.value, 0),
                )
                await ctx.bus.nc.publish(subjects.heartbeat("queue", self.instance_id), _enc.encode(hb))
            except (nats.errors.Error, OSError) as exc:
                log.debug("queue heartbeat not sent: %r", exc)
            await asyncio.sleep(self.cfg.heartbeat_s)

    # -- commands (leader) and forwarding (standby) ------------------------------

    async def _submit_bytes(self, data: bytes) -> bytes:
        assert self.duties is not None
        try:
            req = decode_submission(data)
        except SubmissionError as exc:
            return _enc.encode(SubmitReply(ok=False, error=str(exc)))
        return _enc.encode(await self.duties.submit(req))

    async def _cancel_bytes(self, data: bytes) -> bytes:
        assert self.duties is not None
        ref = msgspec.json.decode(data, type=JobRef)
        return _enc.encode(await self.duties.cancel(ref.job_id, ref.reason, ref.actor))

    async def _requeue_bytes(self, data: bytes) -> bytes:
        assert self.duties is not None
        ref = msgspec.json.decode(data, type=JobRef)
        return _enc.encode(await self.duties.requeue(ref.job_id, ref.actor))

    async def command(self, op: str, data: bytes) -> bytes:
        """Run a command here if leading, else on the leader; an error reply when there is none."""
        handlers = {
            "submit": self._submit_bytes,
            "cancel": self._cancel_bytes,
            "requeue": self._requeue_bytes,
        }
        if self.is_leader:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._leading.wait(), 10.0)
            return await handlers[op](data)
        try:
            msg = await self.context.bus.nc.request(api.leader(op), data, timeout=5.0)
            return bytes(msg.data)
        except (TimeoutError, nats.errors.NoRespondersError, nats.errors.TimeoutError):
            error = "no queue leader is reachable right now (a failover takes up to 10 s); try again"
            if op == "submit":
                return _enc.encode(SubmitReply(ok=False, error=error))
            job_id = msgspec.json.decode(data, type=JobRef).job_id
            return _enc.encode(JobActionReply(ok=False, job_id=job_id, error=error))

    # -- queries (any instance) --------------------------------------------------

    async def list_jobs(self, q: JobsQuery) -> JobsList:
        assert self.store is not None
        jobs = await self.store.query([s.value for s in q.states], q.object_id, q.limit)
        leader = self.lease.leader.instance if self.lease and self.lease.leader else None
        return JobsList(jobs=jobs, counts=await self.store.counts(), leader=leader)

    async def job_detail(self, job_id: str) -> JobDetail:
        assert self.store is not None
        job = await self.store.get(job_id)
        if job is None:
            return JobDetail(ok=False, error=f"no job {job_id}")
        return JobDetail(ok=True, job=job, timeline=await self.store.timeline(job_id))

    def endpoints(self) -> list[Endpoint]:
        async def submit(req: Request) -> None:
            await req.respond(await self.command("submit", req.data))

        async def cancel(req: Request) -> None:
            await req.respond(await self._checked_ref(req.data, "cancel"))

        async def requeue(req: Request) -> None:
            await req.respond(await self._checked_ref(req.data, "requeue"))

        async def list_(req: Request) -> None:
            try:
                q = msgspec.json.decode(req.data or b"{}", type=JobsQuery)
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                await req.respond_error("400", f"bad query: {exc}")
                return
            await req.respond(_enc.encode(await self.list_jobs(q)))

        async def get(req: Request) -> None:
            try:
                ref = msgspec.json.decode(req.data, type=JobRef)
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                await req.respond(_enc.encode(JobDetail(ok=False, error=f"bad request: {exc}")))
                return
            await req.respond(_enc.encode(await self.job_detail(ref.job_id)))

        return [
            Endpoint("submit", api.SUBMIT, submit),
            Endpoint("list", api.LIST, list_),
            Endpoint("get", api.GET, get),
            Endpoint("cancel", api.CANCEL, cancel),
            Endpoint("requeue", api.REQUEUE, requeue),
        ]

    async def _checked_ref(self, data: bytes, op: str) -> bytes:
        try:
            msgspec.json.decode(data, type=JobRef)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            return _enc.encode(JobActionReply(ok=False, job_id="?", error=f"bad request: {exc}"))
        return await self.command(op, data)

    # -- dashboard ---------------------------------------------------------------

    def routes(self) -> list[web.AbstractRouteDef]:
        return JobsPages(self).routes()

    def nav(self) -> list[NavLink]:
        return [NavLink("Jobs", "/jobs", order=20)]


def _stream_submission(data: bytes, headers: Any) -> SubmitRequest:
    req = decode_submission(data)
    if req.request_id is None:
        msg_id = headers.get("Nats-Msg-Id") if headers else None
        if msg_id:
            req = msgspec.structs.replace(req, request_id=str(msg_id))
    return req


def _replying(handler: Any) -> Any:
    async def cb(msg: Msg) -> None:
        try:
            out = await handler(msg.data)
        except Exception as exc:
            log.exception("queue: leader command failed")
            out = _enc.encode({"ok": False, "job_id": "?", "error": f"queue error: {exc}"})
        with contextlib.suppress(nats.errors.Error):
            await msg.respond(out)

    return cb
