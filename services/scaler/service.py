"""The scaler (``foto3d serve scaler``): starts trainers when work waits, stops idle ones.

Every ``interval_s`` it reads the WORK consumers (undelivered and running
jobs) and the trainers' heartbeats, asks :func:`.policy.plan` what to do, and
tells its backend: ``local`` (trainer processes on this host; the default, so
``foto3d up`` trains on its own machine when nerfstudio is installed),
``aws-ec2`` (one GPU instance per launch), or ``none`` (watch only; on
Kubernetes KEDA scales the trainer Job from the same consumers).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import nats.errors
from aiohttp import web

from foto3d.libs.service import Health, Service, ServiceContext
from foto3d.libs.tasks import cancel_and_wait
from foto3d.services.scaler.backends.base import Backend
from foto3d.services.scaler.observe import TrainerWatch, WorkView, work_view
from foto3d.services.scaler.policy import LaunchRequest, Machine, Plan, plan
from foto3d.services.scaler.settings import SETTINGS, TRAINER_VIEW, ScalerSettings, spend_cap

log = logging.getLogger(__name__)


class WatchOnly(Backend):
    name = "none"

    def unavailable(self) -> str | None:
        return "backend 'none': this scaler only watches (KEDA or people start trainers)"

    async def launch(self, req: LaunchRequest) -> Machine:
        raise RuntimeError("the 'none' backend starts nothing")

    async def machines(self) -> list[Machine]:
        return []

    async def stop(self, machine_id: str) -> None:
        return None


def make_backend(cfg: ScalerSettings, ctx: ServiceContext, scaler_id: str) -> Backend:
    if cfg.backend == "local":
        from foto3d.services.scaler.backends.local import LocalBackend

        trainer = TRAINER_VIEW.load(ctx.settings)
        return LocalBackend(
            ctx.nats_urls, ctx.settings.data_dir, ns_bin=trainer.ns_bin, require_gpu=trainer.require_gpu
        )
    if cfg.backend == "aws-ec2":
        from foto3d.services.scaler.backends.aws_ec2 import AwsEc2Backend

        return AwsEc2Backend(cfg.aws, ctx.nats_urls, scaler_id)
    return WatchOnly()


class Scaler(Service):
    name = "scaler"
    description = "Starts trainers when work waits and stops idle ones, within limits."

    def __init__(self) -> None:
        super().__init__()
        self.cfg = ScalerSettings()
        self.backend: Backend = WatchOnly()
        self.watch: TrainerWatch | None = None
        self.last_plan = Plan()
        self.last_view = WorkView()
        self.last_error = ""
        self.launched = 0
        self.stopped = 0
        self._machines: list[Machine] = []
        self._idle_since: dict[str, float] = {}
        self._stopped_ids: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    async def start(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.cfg = SETTINGS.load(ctx.settings)
        self.backend = make_backend(self.cfg, ctx, self.instance_id)
        self.watch = TrainerWatch(ctx.bus)
        await self.watch.start()
        self._task = asyncio.create_task(self._loop(), name="scaler")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
        if self.watch is not None:
            await self.watch.stop()
        await self.backend.close()

    async def _loop(self) -> None:
        while True:
            try:
                await self.tick()
                self.last_error = ""
            except asyncio.CancelledError:
                raise
            except (TimeoutError, nats.errors.Error) as exc:
                # NATS briefly away (a server restart): one line, the next round retries.
                self.last_error = f"NATS unavailable: {exc!r}"
                log.warning("scaler round skipped: %s", self.last_error)
            except Exception as exc:
                self.last_error = str(exc)
                log.exception("scaler round failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.cfg.interval_s)
            self._wake.clear()

    async def tick(self) -> Plan:
        """One round: observe, plan, act."""
        assert self.watch is not None
        now = time.time()
        view = await work_view(self.context.bus)
        everything = await self.backend.machines()
        # A machine told to stop is on its way out: neither free nor to be stopped again.
        self._stopped_ids &= {m.id for m in everything}
        machines = [m for m in everything if m.id not in self._stopped_ids]
        live = {m.id for m in machines}
        self.watch.forget_older_than(now - 24 * 3600)
        seen = self.watch.seen
        for m in machines:
            t = seen.get(m.id)
            if t is not None and not t.busy and not t.stopping:
                self._idle_since.setdefault(m.id, now)
            else:
                self._idle_since.pop(m.id, None)
        for mid in [k for k in self._idle_since if k not in live]:
            del self._idle_since[mid]
        p = plan(
            cfg=self.cfg,
            now=now,
            pending=view.pending,
            waiting_jobs=view.waiting,
            machines=machines,
            trainers=seen,
            idle_since=self._idle_since,
        )
        why_not = self.backend.unavailable()
        if p.start and why_not:
            p.reasons.append(f"cannot start trainers: {why_not}")
            p.start = []
        for req in p.start:
            m = await self.backend.launch(req)
            if m.id in {x.id for x in machines}:
                continue  # the backend already had a machine for this token
            self.launched += 1
            machines.append(m)
            log.info("started trainer %s (%s) for %s", m.id, self.backend.name, req.job_id or "waiting work")
        for mid in p.stop + p.reap:
            why = "idle" if mid in p.stop else "no heartbeat"
            log.info("stopping trainer %s (%s)", mid, why)
            await self.backend.stop(mid)
            self._stopped_ids.add(mid)
            self.stopped += 1
        self._machines = machines
        self.last_plan = p
        self.last_view = view
        return p

    def poke(self) -> None:
        """Run the next round now (tests, and the status endpoint's refresh)."""
        self._wake.set()

    # ---- reporting -------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        p = self.last_plan
        return {
            "backend": self.backend.name,
            "backend_detail": self.backend.describe(),
            "unavailable": self.backend.unavailable(),
            "pending": self.last_view.pending,
            "running_jobs": self.last_view.in_flight,
            "machines": [
                {
                    "id": m.id,
                    "state": p.states.get(m.id, "starting"),
                    "job": m.job_hint,
                    "launched_at": m.launched_at,
                }
                for m in self._machines
            ],
            "limits": {
                "min": self.cfg.min_trainers,
                "max": self.cfg.max_trainers,
                "spend_cap_machines": spend_cap(self.cfg),
                "one_per_dataset": self.cfg.one_per_dataset,
            },
            "launched": self.launched,
            "stopped": self.stopped,
            "reasons": p.reasons,
            "error": self.last_error,
        }

    def routes(self) -> list[web.AbstractRouteDef]:
        async def status(_req: web.Request) -> web.Response:
            return web.json_response(self.status())

        return [web.get("/api/scaler", status)]

    def health(self) -> Health:
        if self.ctx is None:
            return Health("starting")
        if self.last_error:
            return Health("degraded", self.last_error, self.status())
        why_not = self.backend.unavailable()
        if why_not and self.last_view.pending and self.cfg.backend != "none":
            return Health("degraded", f"{self.last_view.pending} job(s) wait; {why_not}", self.status())
        return Health("ok", f"{len(self._machines)} trainer(s) via {self.backend.name}", self.status())

    def banner(self) -> list[str]:
        why_not = self.backend.unavailable()
        if why_not and self.cfg.backend == "local":
            return [f"no trainer can start on this host: {why_not}; jobs wait for a trainer elsewhere"]
        if why_not:
            return [why_not]
        return [f"starts up to {self.cfg.max_trainers} trainer(s): {self.backend.describe()}"]
