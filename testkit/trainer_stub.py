"""A trainer that speaks the real work contract with a no-op pipeline (tests and the benchmark).

It fetches ``WorkItem`` s from ``WORK/trainer-vip`` first, then ``WORK/trainer-normal``,
publishes ``JobStarted``, a ``JobProgress`` and ``JobSucceeded`` (or ``JobFailed``)
on ``f3d.jobs.events.<job>`` and acks, exactly as the real trainer does; it
records every (job id, attempt) it ran. ``mode="nak"`` hands every message back
at once (a trainer dying on it), to exhaust MaxDeliver quickly.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Literal

import msgspec
import nats.errors
from nats.aio.msg import Msg
from nats.js.errors import FetchTimeoutError

from foto3d.libs.bus.connection import Bus
from foto3d.proto import subjects
from foto3d.proto.jobs import JobFailed, JobProgress, JobStarted, JobSucceeded, WorkItem

Mode = Literal["ok", "fail", "nak"]
_dec = msgspec.json.Decoder(WorkItem)


@dataclass
class StubTrainer:
    bus: Bus
    name: str
    mode: Mode = "ok"
    work_s: float = 0.0
    ran: list[tuple[str, int]] = field(default_factory=list)
    started_at: dict[str, float] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None
    _stopping: bool = False

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=f"stub:{self.name}")

    async def stop(self) -> None:
        # nats-py's fetch can swallow a cancellation: stop by flag, cancel only as a fallback.
        self._stopping = True
        if self._task:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), 3.0)
            except (TimeoutError, asyncio.CancelledError, Exception):
                self._task.cancel()

    async def run(self) -> None:
        vip = await self.bus.js.pull_subscribe_bind("trainer-vip", "WORK")
        normal = await self.bus.js.pull_subscribe_bind("trainer-normal", "WORK")
        try:
            await self._loop(vip, normal)
        finally:
            for sub in (vip, normal):
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()

    async def _loop(self, vip: object, normal: object) -> None:
        while not self._stopping:
            msg = await _one(vip, 0.02) or await _one(normal, 0.3)
            if msg is None:
                continue
            try:
                item = _dec.decode(msg.data)
            except (msgspec.ValidationError, msgspec.DecodeError):
                await msg.term()
                continue
            if self.mode == "nak":
                await msg.nak()
                continue
            await self._work(item)
            await _ack(msg)

    async def _publish(self, ev: msgspec.Struct, job_id: str, msg_id: str) -> None:
        await self.bus.publish(subjects.job_events(job_id), ev, msg_id=msg_id)

    async def _work(self, item: WorkItem) -> None:
        jid, oid, n, me = item.job_id, item.object_id, item.attempt, self.name
        self.started_at[item.job_id] = time.time()
        self.ran.append((item.job_id, item.attempt))
        await self._publish(
            JobStarted(
                job_id=jid,
                object_id=oid,
                attempt=n,
                actor=me,
                ts=time.time(),
                trainer=self.name,
                host="localhost",
            ),
            item.job_id,
            f"{item.job_id}:started:{n}",
        )
        await self._publish(
            JobProgress(
                job_id=jid,
                object_id=oid,
                attempt=n,
                actor=me,
                ts=time.time(),
                stage="train",
                step=1,
                total=2,
                eta_s=self.work_s,
            ),
            item.job_id,
            f"{item.job_id}:progress:{n}:1",
        )
        if self.work_s:
            await asyncio.sleep(self.work_s)
        if self.mode == "fail":
            ev: msgspec.Struct = JobFailed(
                job_id=jid,
                object_id=oid,
                attempt=n,
                actor=me,
                ts=time.time(),
                error="ns-train exited with 1",
                step="train",
            )
            await self._publish(ev, item.job_id, f"{item.job_id}:failed:{n}")
        else:
            ev = JobSucceeded(
                job_id=jid,
                object_id=oid,
                attempt=n,
                actor=me,
                ts=time.time(),
                artifacts=[],
                metrics={"gaussians": 1.0},
            )
            await self._publish(ev, item.job_id, f"{item.job_id}:succeeded:{n}")


async def _one(sub: object, timeout: float) -> Msg | None:
    try:
        msgs = await sub.fetch(1, timeout=timeout)  # type: ignore[attr-defined]
    except (TimeoutError, FetchTimeoutError, nats.errors.TimeoutError):
        return None
    except nats.errors.Error:
        await asyncio.sleep(0.2)
        return None
    return msgs[0] if msgs else None


async def _ack(msg: Msg, patience: float = 15.0) -> None:
    """Ack, retrying across a reconnect: a lost ack would make the work come back."""
    deadline = time.monotonic() + patience
    while True:
        try:
            await msg.ack_sync(timeout=2)
            return
        except (TimeoutError, nats.errors.Error):
            if time.monotonic() > deadline:
                return
            await asyncio.sleep(0.3)
