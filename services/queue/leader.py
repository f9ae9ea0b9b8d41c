"""What only the leader does: accept submissions, dispatch work, decide retries and deaths.

Every decision is published as a job event with a deterministic ``Nats-Msg-Id``
(``<job>:queued:<attempt>``, ``<job>:retried:<attempt>``, ...) and every work
message as ``<job>:<attempt>``, so a new leader that repeats what the old one
may or may not have finished produces no duplicates: JetStream drops them.
Job ids derive from the submission's request id for the same reason.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

import msgspec
import nats.errors
from nats.js.errors import NotFoundError

from foto3d.libs.bus.connection import Bus
from foto3d.libs.bus.dead import publish_dead_letter
from foto3d.libs.tracing.job import job_span
from foto3d.libs.tracing.propagator import traceparent
from foto3d.proto import subjects
from foto3d.proto.api import BAD_REQUEST, CONFLICT, NOT_FOUND, ServiceError
from foto3d.proto.jobs import (
    JobActionReply,
    JobCancelled,
    JobDead,
    JobEvent,
    JobQueued,
    JobRetried,
    JobState,
    JobSummary,
    SubmissionError,
    SubmitReply,
    SubmitRequest,
    WorkItem,
    job_id_for,
)
from foto3d.services.queue.settings import QueueSettings, backoff
from foto3d.services.queue.store import TERMINAL, JobStore
from foto3d.services.queue.tail import EventTail
from foto3d.services.queue.validation import dedupe_key, validate_submission

log = logging.getLogger(__name__)
REQUEUEABLE = (JobState.DEAD, JobState.FAILED, JobState.CANCELLED)


class LeaderDuties:
    def __init__(self, bus: Bus, store: JobStore, tail: EventTail, cfg: QueueSettings, actor: str) -> None:
        self.bus = bus
        self.store = store
        self.tail = tail
        self.cfg = cfg
        self.actor = actor
        self._lock = asyncio.Lock()
        # Published but perhaps not yet applied by the tail: request id / dedupe key -> job id.
        self._recent_requests: dict[str, tuple[str, float]] = {}
        self._recent_keys: dict[str, tuple[str, float]] = {}
        self._work_seq: dict[str, int] = {}
        self.retry_wakeup = asyncio.Event()
        self.submitted = 0
        self.dispatched = 0

    # -- publishing ------------------------------------------------------------

    async def _event(self, ev: JobEvent, msg_id: str) -> int:
        ack = await self.bus.publish(subjects.job_events(ev.job_id), ev, msg_id=msg_id)
        return int(ack.seq)

    async def dispatch(self, job: JobSummary, attempt: int | None = None) -> None:
        """Put the WorkItem of ``attempt`` (default: the job's current one) on WORK."""
        n = attempt or job.attempt
        item = WorkItem(
            job_id=job.job_id,
            object_id=job.object_id,
            dataset=job.dataset,
            attempt=n,
            options=job.options,
            priority=job.priority,
            traceparent=job.traceparent,
        )
        ack = await self.bus.publish(
            subjects.work_train(job.priority.value), item, msg_id=f"{job.job_id}:{n}"
        )
        self._work_seq[job.job_id] = int(ack.seq)
        self.dispatched += 1

    async def _dead_letter(self, job: JobSummary, reason: str, payload: bytes | None = None) -> None:
        item = WorkItem(
            job_id=job.job_id,
            object_id=job.object_id,
            dataset=job.dataset,
            attempt=job.attempt,
            options=job.options,
            priority=job.priority,
            traceparent=job.traceparent,
        )
        await publish_dead_letter(
            self.bus,
            "work",
            payload if payload is not None else msgspec.json.encode(item),
            reason=reason,
            original_subject=subjects.work_train(job.priority.value),
            msg_id=f"dead:{job.job_id}:{job.attempt}",
            job_id=job.job_id,
            deadline=30.0,
        )

    def _prune_recent(self) -> None:
        horizon = time.monotonic() - 120
        for d in (self._recent_requests, self._recent_keys):
            for k in [k for k, (_, t) in d.items() if t < horizon]:
                del d[k]

    # -- submissions -----------------------------------------------------------

    async def submit(self, req: SubmitRequest, actor: str = "") -> SubmitReply:
        """Queue ``req`` (or find the job it repeats); a submission that cannot train is refused."""
        try:
            await validate_submission(req, self.cfg)
        except SubmissionError as exc:
            raise ServiceError(BAD_REQUEST, str(exc)) from None
        request_id = req.request_id or uuid.uuid4().hex
        job_id = job_id_for(request_id)
        key = dedupe_key(req.object_id, req.dataset, req.options)
        async with self._lock:
            self._prune_recent()
            existing = await self.store.by_request(request_id)
            if existing is not None:
                if existing.state == JobState.QUEUED and existing.retry_at is None:
                    # The submission came again: maybe the old leader died before dispatching.
                    await self.dispatch(existing)
                return SubmitReply(job_id=existing.job_id, duplicate=True, state=existing.state)
            if request_id in self._recent_requests:
                jid = self._recent_requests[request_id][0]
                return SubmitReply(job_id=jid, duplicate=True, state=JobState.QUEUED)
            if not req.force:
                dup = await self.store.active_duplicate(key)
                if dup is not None:
                    return SubmitReply(job_id=dup.job_id, duplicate=True, state=dup.state)
                if key in self._recent_keys:
                    jid = self._recent_keys[key][0]
                    return SubmitReply(job_id=jid, duplicate=True, state=JobState.QUEUED)
            with job_span("submit job", job_id=job_id, object_id=req.object_id, step="submit", attempt=1):
                # The job's trace: this span's context, a child of the submitter's when it sent one.
                trace_context = traceparent()
            queued = JobQueued(
                traceparent=trace_context,
                job_id=job_id,
                object_id=req.object_id,
                ts=time.time(),
                attempt=1,
                actor=actor or req.submitted_by or self.actor,
                dataset=req.dataset,
                priority=req.priority,
                options=req.options,
                request_id=request_id,
                reason="submitted",
                max_attempts=self.cfg.max_attempts,
            )
            seq = await self._event(queued, f"{job_id}:queued:1")
            now = time.monotonic()
            self._recent_requests[request_id] = (job_id, now)
            self._recent_keys[key] = (job_id, now)
        job = _summary_of(queued)
        await self.dispatch(job)
        self.submitted += 1
        # Read-your-writes: once the reply is out, the leader (and so every command) sees the job.
        await self.tail.wait_for(seq, 5.0)
        return SubmitReply(job_id=job_id, state=JobState.QUEUED)

    # -- decisions -------------------------------------------------------------

    async def react(self, job_ids: list[str]) -> None:
        """A job changed: a failed attempt needs a retry or a death."""
        for job_id in dict.fromkeys(job_ids):
            job = await self.store.get(job_id)
            if job is not None and job.state == JobState.FAILED:
                await self.decide(job)

    async def decide(self, job: JobSummary) -> None:
        async with self._lock:
            fresh = await self.store.get(job.job_id)
            if fresh is None or fresh.state != JobState.FAILED or fresh.attempt != job.attempt:
                return
            if fresh.attempt < fresh.max_attempts:
                delay = backoff(self.cfg, fresh.attempt - fresh.first_attempt + 1)
                ev = JobRetried(
                    job_id=fresh.job_id,
                    object_id=fresh.object_id,
                    ts=time.time(),
                    attempt=fresh.attempt,
                    actor=self.actor,
                    reason=fresh.error or "",
                    retry_at=time.time() + delay,
                    delay_s=delay,
                )
                seq = await self._event(ev, f"{fresh.job_id}:retried:{fresh.attempt}")
                await self.tail.wait_for(seq, 5.0)
                self.retry_wakeup.set()
            else:
                tries = fresh.attempt - fresh.first_attempt + 1
                await self._die(
                    fresh, f"failed {tries} of {tries} attempts; last error: {fresh.error or '?'}"
                )

    async def _die(self, job: JobSummary, error: str, payload: bytes | None = None) -> None:
        ev = JobDead(
            job_id=job.job_id,
            object_id=job.object_id,
            ts=time.time(),
            attempt=job.attempt,
            actor=self.actor,
            error=error,
        )
        await self._dead_letter(job, error, payload)
        seq = await self._event(ev, f"{job.job_id}:dead:{job.attempt}")
        await self.tail.wait_for(seq, 5.0)

    async def run_due_retries(self) -> float | None:
        """Queue the next attempt of every job whose backoff is over; returns the next due time."""
        for job in await self.store.due_retries():
            async with self._lock:
                fresh = await self.store.get(job.job_id)
                if fresh is None or fresh.state != JobState.QUEUED or fresh.retry_at is None:
                    continue
                n = fresh.attempt + 1
                ev = _queued_again(fresh, n, "retry", self.actor)
                seq = await self._event(ev, f"{fresh.job_id}:queued:{n}")
                await self.tail.wait_for(seq, 5.0)
            await self.dispatch(fresh, n)
        return await self.store.next_retry_at()

    async def take_over(self) -> None:
        """Finish what a previous leader may have left half done."""
        for job in await self.store.undecided_failures():
            await self.decide(job)
        for job in await self.store.waiting_for_trainer():
            # Same Nats-Msg-Id as the first send: JetStream drops it if the work is there.
            await self.dispatch(job)
        self.retry_wakeup.set()

    # -- operator commands -----------------------------------------------------

    async def cancel(self, job_id: str, reason: str, actor: str) -> JobActionReply:
        async with self._lock:
            job = await self.store.get(job_id)
            if job is None:
                raise ServiceError(NOT_FOUND, f"no job {job_id}")
            if job.state.value in TERMINAL:
                raise ServiceError(CONFLICT, f"job {job_id} is already {job.state.value}")
            ev = JobCancelled(
                job_id=job.job_id,
                object_id=job.object_id,
                ts=time.time(),
                attempt=job.attempt,
                actor=actor or self.actor,
                reason=reason,
            )
            seq = await self._event(ev, f"{job.job_id}:cancelled:{job.attempt}")
            await self.tail.wait_for(seq, 5.0)
        if job.state == JobState.QUEUED:
            await self._withdraw_work(job)
        return JobActionReply(job_id=job_id, state=JobState.CANCELLED)

    async def requeue(self, job_id: str, actor: str) -> JobActionReply:
        async with self._lock:
            job = await self.store.get(job_id)
            if job is None:
                raise ServiceError(NOT_FOUND, f"no job {job_id}")
            if job.state not in REQUEUEABLE:
                raise ServiceError(
                    CONFLICT,
                    f"job {job_id} is {job.state.value}; only dead, failed or cancelled jobs can be requeued",
                )
            n = job.attempt + 1
            ev = _queued_again(job, n, "requeue", actor or self.actor, self.cfg.max_attempts)
            seq = await self._event(ev, f"{job.job_id}:queued:{n}")
            await self.tail.wait_for(seq, 5.0)
        await self.dispatch(job, n)
        return JobActionReply(job_id=job_id, state=JobState.QUEUED)

    async def _withdraw_work(self, job: JobSummary) -> None:
        """Remove a cancelled job's waiting WorkItem so no trainer starts it."""
        seq = self._work_seq.get(job.job_id)
        try:
            if seq is None:
                seq = await self._find_work(job)
            if seq is not None:
                await self.bus.js.delete_msg(subjects.WORK_STREAM, seq)
        except (NotFoundError, TimeoutError, nats.errors.Error) as exc:
            log.info(
                "cancel %s: work message not removed (%r); trainers skip it on JobCancelled", job.job_id, exc
            )

    async def _find_work(self, job: JobSummary, limit: int = 20_000) -> int | None:
        subject = subjects.work_train(job.priority.value)
        info = await self.bus.js.stream_info(subjects.WORK_STREAM)
        seq = int(info.state.first_seq)
        for _ in range(limit):
            try:
                raw = await self.bus.js.get_msg(subjects.WORK_STREAM, seq=seq, subject=subject, next=True)
            except NotFoundError:
                return None
            item = msgspec.json.decode(raw.data or b"{}", type=dict[str, Any])
            if item.get("job_id") == job.job_id and item.get("attempt") == job.attempt:
                return int(raw.seq or 0)
            seq = int(raw.seq or seq) + 1
        return None

    # -- MaxDeliver advisories -------------------------------------------------

    async def max_deliveries(self, advisory: dict[str, Any]) -> None:
        """A WorkItem was delivered max_deliver times without an ack: the job is dead."""
        seq = int(advisory.get("stream_seq", 0))
        deliveries = advisory.get("deliveries", "?")
        try:
            raw = await self.bus.js.get_msg(subjects.WORK_STREAM, seq)
        except NotFoundError:
            log.info("max-deliveries advisory for WORK seq %s: message already gone", seq)
            return
        data = raw.data or b""
        try:
            item = msgspec.json.decode(data, type=WorkItem)
        except (msgspec.ValidationError, msgspec.DecodeError):
            item = None
        if item is not None:
            async with self._lock:
                job = await self.store.get(item.job_id)
                if job is not None and job.attempt == item.attempt and job.state.value not in TERMINAL:
                    await self._die(
                        job,
                        f"delivered {deliveries} times to trainers without an ack "
                        "(a trainer died or hung on it each time)",
                        data,
                    )
        try:
            await self.bus.js.delete_msg(subjects.WORK_STREAM, seq)
        except (NotFoundError, nats.errors.Error):
            pass


def _summary_of(ev: JobQueued) -> JobSummary:
    return JobSummary(
        job_id=ev.job_id,
        object_id=ev.object_id,
        dataset=ev.dataset,
        priority=ev.priority,
        state=JobState.QUEUED,
        attempt=ev.attempt,
        max_attempts=ev.max_attempts or 1,
        created=ev.ts,
        updated=ev.ts,
        options=ev.options,
        request_id=ev.request_id,
        traceparent=ev.traceparent,
    )


def _queued_again(
    job: JobSummary, attempt: int, reason: str, actor: str, max_attempts: int | None = None
) -> JobQueued:
    return JobQueued(
        job_id=job.job_id,
        object_id=job.object_id,
        ts=time.time(),
        attempt=attempt,
        actor=actor,
        dataset=job.dataset,
        priority=job.priority,
        options=job.options,
        request_id=job.request_id,
        reason=reason,
        max_attempts=max_attempts,
        traceparent=job.traceparent,
    )
