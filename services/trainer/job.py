"""One delivery of a work message, from ``started`` to the ack.

While the pipeline runs the message is kept alive with ``in_progress()`` so
JetStream does not hand it to another trainer; a heartbeat of kind ``job``
carries the progress. The job ends in exactly one of four ways:

- finished: ``succeeded`` or ``failed`` is published, then the message is acked
  (the queue decides about retries and publishes the next attempt);
- cancelled: a ``JobCancelled`` appeared on the job's subject; the step is
  stopped and the message acked;
- handed back (SIGTERM past the grace): the step is stopped and the message
  nak'ed, so another trainer takes it at once;
- killed with the trainer: nothing more is sent, and the message comes back to
  another trainer after ack_wait;
- lost: cut off from NATS for ``ownership_timeout_s`` (less than ack_wait), the
  trainer can no longer keep the message and gives the job up (stops the step,
  sends nothing), because the server is about to hand it to another trainer.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import nats.errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.errors import NotFoundError

from foto3d.libs.bus.connection import Bus
from foto3d.libs.heartbeat import HeartbeatSender
from foto3d.libs.storage import BlobStore
from foto3d.libs.tasks import cancel_and_wait
from foto3d.libs.tracing.consume import consume_span
from foto3d.libs.tracing.job import job_attributes
from foto3d.proto import subjects
from foto3d.proto.base import now
from foto3d.proto.heartbeat import Progress
from foto3d.proto.jobs import (
    JobCancelled,
    JobEvent,
    JobFailed,
    JobProgress,
    JobStarted,
    JobSucceeded,
    WorkItem,
)
from foto3d.services.trainer.joblog import JobLog
from foto3d.services.trainer.pipeline import Pipeline, PipelineResult
from foto3d.services.trainer.process import StepError
from foto3d.services.trainer.progress import Throttle
from foto3d.services.trainer.settings import TrainerSettings

log = logging.getLogger(__name__)

_events = msgspec.json.Decoder(JobEvent)
FINAL_PUBLISH_DEADLINE = 300.0


class Outcome(enum.StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    HANDED_BACK = "handed_back"
    LOST = "lost"
    SKIPPED = "skipped"


@dataclass
class JobRun:
    bus: Bus
    msg: Msg
    item: WorkItem
    cfg: TrainerSettings
    store: BlobStore
    joblog: JobLog
    work_root: Path
    trainer_id: str
    host: str = field(default_factory=socket.gethostname)
    progress: Progress = field(default_factory=lambda: Progress(stage="queued"))
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    handback: asyncio.Event = field(default_factory=asyncio.Event)
    lost: asyncio.Event = field(default_factory=asyncio.Event)
    started_at: float = field(default_factory=time.monotonic)
    _pipeline: Pipeline | None = None
    _progress_tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _throttle: Throttle = field(default_factory=Throttle)
    _seq: int = 0

    @property
    def delivery(self) -> int:
        return int(self.msg.metadata.num_delivered)

    @property
    def eta_s(self) -> float | None:
        return self.progress.eta_s

    def _msg_id(self, what: str) -> str:
        # The delivery count keeps a redelivered attempt's events from being deduplicated away.
        return f"{self.item.job_id}:{self.item.attempt}:{self.delivery}:{what}"

    def _base(self) -> dict[str, Any]:
        return {
            "job_id": self.item.job_id,
            "object_id": self.item.object_id,
            "ts": now(),
            "attempt": self.item.attempt,
            "actor": f"trainer:{self.trainer_id}",
        }

    async def _publish(self, event: msgspec.Struct, what: str, deadline: float = 30.0) -> None:
        await self.bus.publish(
            subjects.job_events(self.item.job_id), event, msg_id=self._msg_id(what), deadline=deadline
        )

    async def run(self) -> Outcome:
        headers = dict(self.msg.headers or {})
        if self.item.traceparent:
            # The job's own trace wins over the dispatch's: a retry is dispatched from the
            # queue's retry loop, outside any span, yet belongs to the same job.
            headers["traceparent"] = self.item.traceparent
        with consume_span(self.msg.subject, headers, name="train") as span:
            span.set_attributes(
                job_attributes(self.item.job_id, self.item.object_id, "attempt", self.item.attempt)
            )
            return await self._run()

    async def _already_cancelled(self) -> bool:
        try:
            raw = await self.bus.js.get_last_msg(
                subjects.JOB_EVENTS_STREAM, subjects.job_events(self.item.job_id)
            )
        except (NotFoundError, nats.errors.Error):
            return False
        try:
            return isinstance(_events.decode(raw.data or b""), JobCancelled)
        except (msgspec.ValidationError, msgspec.DecodeError):
            return False

    def _on_event(self, data: bytes) -> None:
        try:
            event = _events.decode(data)
        except (msgspec.ValidationError, msgspec.DecodeError):
            return
        if isinstance(event, JobCancelled):
            self.joblog.emit(
                "WARNING",
                f"job cancelled: {event.reason or 'no reason given'}; stopping",
                job_id=self.item.job_id,
                object_id=self.item.object_id,
            )
            self.cancelled.set()

    async def _keepalive(self) -> None:
        loop = asyncio.get_running_loop()
        next_beat = loop.time() + self.cfg.keepalive_s
        away_since: float | None = None
        while True:
            await asyncio.sleep(min(0.5, self.cfg.keepalive_s))
            now = loop.time()
            if self.bus.connected:
                away_since = None
            else:
                away_since = away_since if away_since is not None else now
                if now - away_since >= self.cfg.ownership_timeout_s:
                    self.lost.set()
                    return
            if now < next_beat:
                continue
            next_beat = now + self.cfg.keepalive_s
            try:
                await self.msg.in_progress()
            except nats.errors.Error as exc:
                log.warning("job %s: in_progress not sent: %r", self.item.job_id, exc)

    def _on_progress(self, stage: str, step: int, total: int, eta_s: float | None) -> None:
        first_row = step > 0 and self.progress.step == 0
        self.progress = Progress(stage=stage, step=step, total=total, eta_s=eta_s)
        if not self._throttle.ready(stage) and not first_row:
            return
        self._seq += 1
        event = JobProgress(**self._base(), stage=stage, step=step, total=total, eta_s=eta_s)
        task = asyncio.create_task(self._publish(event, f"p{self._seq}", deadline=10.0))
        self._progress_tasks.add(task)
        task.add_done_callback(self._progress_done)

    def _progress_done(self, task: asyncio.Task[None]) -> None:
        self._progress_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("job %s: progress not published: %r", self.item.job_id, task.exception())

    def _on_line(self, step: str, line: str, stream: str) -> None:
        self.joblog.line(self.item.job_id, self.item.object_id, step, line, stream)

    async def _run(self) -> Outcome:
        item = self.item
        if await self._already_cancelled():
            await _ack(self.msg)
            return Outcome.SKIPPED
        sub: Subscription | None = None
        keepalive = asyncio.create_task(self._keepalive(), name=f"keepalive:{item.job_id}")
        beat = HeartbeatSender(
            self.bus,
            "job",
            item.job_id,
            interval=self.cfg.heartbeat_s,
            state_fn=lambda: {
                "progress": self.progress,
                "job_id": item.job_id,
                "object_id": item.object_id,
            },
        )
        workdir = self.work_root / f"{item.job_id}-a{item.attempt}-d{self.delivery}"
        outcome = Outcome.FAILED
        try:

            async def on_msg(m: Msg) -> None:
                self._on_event(m.data)

            sub = await self.bus.nc.subscribe(subjects.job_events(item.job_id), cb=on_msg)
            workdir.mkdir(parents=True, exist_ok=True)
            await self._publish(
                JobStarted(**self._base(), trainer=self.trainer_id, host=self.host), "started"
            )
            self.joblog.emit(
                "INFO",
                f"job {item.job_id} attempt {item.attempt} (delivery {self.delivery}) started on "
                f"{self.trainer_id}: {item.dataset}, {item.options.steps} steps",
                job_id=item.job_id,
                object_id=item.object_id,
            )
            beat.start()
            self._pipeline = Pipeline(
                item=item,
                workdir=workdir,
                cfg=self.cfg,
                store=self.store,
                on_line=self._on_line,
                on_progress=self._on_progress,
                run_name=f"a{item.attempt}-d{self.delivery}",
            )
            outcome = await self._supervise(self._pipeline)
        finally:
            await cancel_and_wait(keepalive, *self._progress_tasks)
            if sub is not None:
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()
            await beat.stop(clean=outcome not in (Outcome.HANDED_BACK, Outcome.LOST))
            self.joblog.end_job(item.job_id, item.object_id)
            keep = outcome is Outcome.FAILED and self.cfg.keep_failed
            if not keep and outcome is not Outcome.SKIPPED:
                await asyncio.to_thread(shutil.rmtree, workdir, True)
        return outcome

    async def _supervise(self, pipeline: Pipeline) -> Outcome:
        work = asyncio.create_task(pipeline.run(), name=f"pipeline:{self.item.job_id}")
        waits = [asyncio.create_task(e.wait()) for e in (self.cancelled, self.handback, self.lost)]
        try:
            await asyncio.wait({work, *waits}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await cancel_and_wait(*waits)
        if not work.done():
            await pipeline.stop()
            await cancel_and_wait(work)
            if self.lost.is_set():
                self.joblog.emit(
                    "ERROR",
                    f"cut off from NATS for {self.cfg.ownership_timeout_s:g} s: job given up at stage "
                    f"{pipeline.stage}; it will be redelivered to a trainer",
                    job_id=self.item.job_id,
                    object_id=self.item.object_id,
                )
                return Outcome.LOST
            if self.handback.is_set() and not self.cancelled.is_set():
                self.joblog.emit(
                    "WARNING",
                    f"trainer stopping: job handed back at stage {pipeline.stage}",
                    job_id=self.item.job_id,
                    object_id=self.item.object_id,
                )
                with contextlib.suppress(nats.errors.Error):
                    await self.msg.nak()
                return Outcome.HANDED_BACK
            await _ack(self.msg)
            return Outcome.CANCELLED
        await self._settle_progress()
        try:
            result = work.result()
        except StepError as exc:
            await self._fail(exc.step, str(exc))
            return Outcome.FAILED
        except Exception as exc:
            log.exception("job %s: unexpected failure", self.item.job_id)
            await self._fail(pipeline.stage or "trainer", f"unexpected error: {exc!r}")
            return Outcome.FAILED
        await self._succeed(result)
        return Outcome.SUCCEEDED

    async def _settle_progress(self) -> None:
        if self._progress_tasks:
            await asyncio.wait(set(self._progress_tasks), timeout=5)

    async def _succeed(self, result: PipelineResult) -> None:
        # Results are stored: free the disk before saying so, so "succeeded" means "clean" too.
        if self._pipeline is not None:
            await asyncio.to_thread(shutil.rmtree, self._pipeline.workdir, True)
        result.metrics["seconds_total"] = round(time.monotonic() - self.started_at, 3)
        event = JobSucceeded(
            **self._base(),
            artifacts=result.artifacts,
            metrics=result.metrics,
            timings=result.timings,
        )
        await self._publish(event, "succeeded", deadline=FINAL_PUBLISH_DEADLINE)
        gaussians = int(result.metrics.get("gaussians", 0))
        self.joblog.emit(
            "INFO",
            f"job {self.item.job_id} succeeded: {gaussians} gaussians, "
            f"{len(result.artifacts)} artifacts, {result.metrics['seconds_total']:.1f} s",
            job_id=self.item.job_id,
            object_id=self.item.object_id,
        )
        await _ack(self.msg)

    async def _fail(self, step: str, error: str) -> None:
        self.joblog.emit(
            "ERROR",
            f"job {self.item.job_id} failed at {step}: {error}",
            job_id=self.item.job_id,
            object_id=self.item.object_id,
        )
        event = JobFailed(**self._base(), error=error[:2000], step=step)
        await self._publish(event, "failed", deadline=FINAL_PUBLISH_DEADLINE)
        await _ack(self.msg)

    async def stop_now(self) -> None:
        """Hand the job back (SIGTERM past the grace)."""
        self.handback.set()


async def _ack(msg: Msg) -> None:
    """Ack and wait for the server's confirmation, so a finished job is not redelivered."""
    try:
        await msg.ack_sync(timeout=5)
    except (nats.errors.Error, TimeoutError) as exc:
        log.warning("ack not confirmed (%r); sending a plain ack", exc)
        with contextlib.suppress(nats.errors.Error):
            await msg.ack()
