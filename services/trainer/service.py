"""The trainer worker (``foto3d serve trainer``): pulls work and runs the nerfstudio pipeline.

It owns nothing durable. Work comes from the WORK stream (VIP first), results go
to the blob store, events to the job's subject, output lines to the log server.
Stopping (SIGTERM) lets a running job finish within ``stop_grace_s`` and hands
it back otherwise; with ``max_jobs`` set the process stops itself after that
many jobs (one trainer per dataset).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time

import msgspec
import nats.errors
from nats.aio.msg import Msg

from foto3d.libs.bus.dead import dead_letter_message
from foto3d.libs.heartbeat import HeartbeatSender
from foto3d.libs.service import Health, Service, ServiceContext
from foto3d.libs.storage import BlobStore, open_store
from foto3d.libs.tasks import cancel_and_wait
from foto3d.proto import subjects
from foto3d.proto.heartbeat import Progress
from foto3d.proto.jobs import WorkItem
from foto3d.services.trainer.job import JobRun, Outcome
from foto3d.services.trainer.joblog import JobLog
from foto3d.services.trainer.preflight import missing_tools
from foto3d.services.trainer.settings import SETTINGS, TrainerSettings, store_uri
from foto3d.services.trainer.topology import NORMAL_WORK, VIP_WORK
from foto3d.services.trainer.work import WorkSource

log = logging.getLogger(__name__)

_work_decoder = msgspec.json.Decoder(WorkItem)


class Trainer(Service):
    name = "trainer"
    consumer_specs = (VIP_WORK, NORMAL_WORK)
    description = "Runs nerfstudio on one dataset at a time and reports progress and results."

    def __init__(self) -> None:
        super().__init__()
        self.cfg = TrainerSettings()
        self.trainer_id = ""
        self.jobs: dict[str, JobRun] = {}
        self.counts: dict[str, int] = {o.value: 0 for o in Outcome}
        self._source: WorkSource | None = None
        self._store: BlobStore | None = None
        self._joblog: JobLog | None = None
        self._beat: HeartbeatSender | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Outcome]] = set()
        self._slots = asyncio.Semaphore(1)
        self._stopping = asyncio.Event()
        self._started_jobs = 0
        self._finished_jobs = 0
        self._idle_since = time.time()

    # ---- lifecycle ---------------------------------------------------------------------------
    async def start(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.cfg = SETTINGS.load(ctx.settings)
        self.trainer_id = self.cfg.trainer_id or f"{socket.gethostname()}-{os.getpid()}"
        self._store = open_store(store_uri(self.cfg, ctx.settings))
        self._work_root = ctx.data_dir("trainer") / "work"
        self._work_root.mkdir(parents=True, exist_ok=True)
        self._joblog = JobLog(self.trainer_id, ctx.nats_urls, ctx.data_dir("trainer"))
        self._slots = asyncio.Semaphore(self.cfg.concurrency)
        self._source = WorkSource(ctx.bus.js)
        await self._source.open()
        self._beat = HeartbeatSender(
            ctx.bus,
            "trainer",
            self.trainer_id,
            interval=self.cfg.heartbeat_s,
            state_fn=self._beat_state,
            # A generated id changes with each process: the next one on this host replaces it.
            lineage=None if self.cfg.trainer_id else "trainer",
        )
        self._beat.start()
        self._loop_task = asyncio.create_task(self._take_work(), name="trainer:take-work")
        missing = missing_tools(self.cfg)
        if missing:
            log.warning("trainer %s: %s not on PATH; jobs will fail preflight", self.trainer_id, missing)

    async def stop(self) -> None:
        """Finish running jobs within the grace, hand the rest back, then leave."""
        if self._stopping.is_set() and self._loop_task is None:
            return
        self._stopping.set()
        if self._loop_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None
        try:
            await self._drain_jobs()
        finally:
            if self._source is not None:
                await self._source.close()
            if self._beat is not None:
                await self._beat.stop(clean=True)
            if self._joblog is not None:
                await self._joblog.close()

    async def _drain_jobs(self) -> None:
        if not self._tasks:
            return
        grace = self.cfg.stop_grace_s
        # A job whose ETA is beyond the grace is handed back now instead of after the wait.
        for run in list(self.jobs.values()):
            if run.eta_s is not None and run.eta_s > grace:
                await run.stop_now()
        try:
            await asyncio.wait_for(asyncio.shield(self._wait_tasks()), timeout=grace)
        except (TimeoutError, asyncio.CancelledError) as exc:
            for run in list(self.jobs.values()):
                await run.stop_now()
            await self._wait_tasks()
            if isinstance(exc, asyncio.CancelledError):
                raise

    async def _wait_tasks(self) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks))

    # ---- taking work ---------------------------------------------------------------------------
    async def _take_work(self) -> None:
        assert self._source is not None
        while not self._stopping.is_set():
            if self.cfg.max_jobs and self._started_jobs >= self.cfg.max_jobs:
                return
            if not await self._acquire_slot():
                return
            msg: Msg | None = None
            try:
                while msg is None and not self._stopping.is_set():
                    msg = await self._source.next()
            except BaseException:
                self._slots.release()
                raise
            if msg is None:
                self._slots.release()
                return
            if self._stopping.is_set():
                with contextlib.suppress(nats.errors.Error):
                    await msg.nak()
                self._slots.release()
                return
            self._launch(msg)

    async def _acquire_slot(self) -> bool:
        """Wait for a free slot; False when the trainer is stopping instead."""
        if self._stopping.is_set():
            return False
        slot = asyncio.create_task(self._slots.acquire())
        stop = asyncio.create_task(self._stopping.wait())
        try:
            await asyncio.wait({slot, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await cancel_and_wait(stop, slot)  # an acquired slot is done, so kept
        if slot.done() and not slot.cancelled():
            if self._stopping.is_set():
                self._slots.release()
                return False
            return True
        return False

    def _launch(self, msg: Msg) -> None:
        self._started_jobs += 1
        task = asyncio.create_task(self._handle(msg), name="trainer:job")
        self._tasks.add(task)
        task.add_done_callback(self._job_done)

    def _job_done(self, task: asyncio.Task[Outcome]) -> None:
        self._tasks.discard(task)
        self._slots.release()
        self._finished_jobs += 1
        if not self.jobs:
            self._idle_since = time.time()
        if not task.cancelled() and task.exception() is not None:
            log.error("job task crashed: %r", task.exception())
        if self.cfg.max_jobs and self._finished_jobs >= self.cfg.max_jobs and not self._stopping.is_set():
            log.info("trainer %s: done %d job(s) (max_jobs); stopping", self.trainer_id, self._finished_jobs)
            # `foto3d serve` stops cleanly on SIGTERM; this is how a one-job trainer exits.
            os.kill(os.getpid(), signal.SIGTERM)

    async def _handle(self, msg: Msg) -> Outcome:
        ctx = self.context
        try:
            item = _work_decoder.decode(msg.data)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            await self._dead_letter(msg, f"malformed work item: {exc}")
            return Outcome.SKIPPED
        assert self._store is not None and self._joblog is not None
        run = JobRun(
            bus=ctx.bus,
            msg=msg,
            item=item,
            cfg=self.cfg,
            store=self._store,
            joblog=self._joblog,
            work_root=self._work_root,
            trainer_id=self.trainer_id,
            host=ctx.host,
        )
        self.jobs[item.job_id] = run
        try:
            outcome = await run.run()
        finally:
            self.jobs.pop(item.job_id, None)
        self.counts[outcome.value] += 1
        return outcome

    async def _dead_letter(self, msg: Msg, reason: str) -> None:
        # A letter that cannot be stored leaves the item unterminated: it comes back and is tried again.
        with contextlib.suppress(Exception):
            await dead_letter_message(
                self.context.bus,
                msg,
                reason,
                consumer=msg.metadata.consumer or "trainer",
                origin=subjects.WORK_STREAM,
                deadline=30.0,
            )

    # ---- reporting -----------------------------------------------------------------------------
    def _beat_state(self) -> dict[str, object]:
        running = list(self.jobs.values())
        if not running:
            return {"pending": 0}
        first = running[0]
        return {
            "pending": len(running),
            "job_id": first.item.job_id,
            "object_id": first.item.object_id,
            "progress": first.progress,
        }

    def health(self) -> Health:
        if self.ctx is None:
            return Health("starting")
        missing = missing_tools(self.cfg)
        extra = {
            "trainer_id": self.trainer_id,
            "running": [
                {"job_id": r.item.job_id, **msgspec.to_builtins(r.progress)} for r in self.jobs.values()
            ],
            "done": dict(self.counts),
            "idle_since": None if self.jobs else self._idle_since,
        }
        if missing:
            return Health("degraded", f"{', '.join(missing)} not on PATH", extra)
        if self._stopping.is_set():
            return Health("stopped", f"{len(self.jobs)} running", extra)
        return Health("ok", f"{len(self.jobs)} running", extra)

    def banner(self) -> list[str]:
        missing = missing_tools(self.cfg)
        lines = [f"trainer id {self.trainer_id}, {self.cfg.concurrency} job(s) at a time"]
        if missing:
            lines.append(f"{', '.join(missing)} not found: install 'foto3d[trainer]' on a GPU host")
        return lines

    @property
    def running_progress(self) -> list[Progress]:
        return [r.progress for r in self.jobs.values()]
