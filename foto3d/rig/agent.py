"""The rig agent: picks the site, wires its sourcing of the rig's logs, forwards the
dataset submissions, and reports status.

Runs beside the rig's nats-server (``foto3d rig up``), which is joined to every site
as a leaf node. Log batches travel by the site's own sourcing over the leaf link; the
agent only keeps that wired to the site in use (``sourcing.py``). Submissions need what
sourcing cannot do: their files are uploaded first, so the agent forwards them, in
order from its cursor. Logs go first: an upload waits before each part while log
batches are still on the rig. Heartbeats are live facts, not history: the agent
publishes the rig's heartbeat (with the number of items waiting) on the rig's server,
and it crosses the leaf links as it is, like any heartbeat published on the rig; none
is kept while offline. Its status goes to ``<rig>/run/status.json`` several times a
second for ``foto3d rig status`` and the panel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from pathlib import Path

import msgspec
import nats.errors
from nats.aio.msg import Msg

from foto3d import __version__
from foto3d.libs.bus.connection import Bus, connect
from foto3d.libs.tasks import cancel_and_wait
from foto3d.proto import subjects
from foto3d.proto.base import encode
from foto3d.proto.heartbeat import Heartbeat
from foto3d.proto.logs import LogBatch
from foto3d.proto.rig import (
    RIG_DATASETS_ALL,
    RIG_DATASETS_STREAM,
    RIG_LOGS_SUBJECTS,
    LinkState,
    RigStatus,
)
from foto3d.rig import problems
from foto3d.rig.datasets import DatasetDelivery
from foto3d.rig.forward import StreamForwarder
from foto3d.rig.outbox import Cursor, provision_outbox
from foto3d.rig.problems import ProblemLog
from foto3d.rig.settings import RigSettings
from foto3d.rig.sites import SitePicker
from foto3d.rig.sourcing import LogSourcing
from foto3d.rig.status import remove_stale_temporaries, write_status
from foto3d.rig.upload import RateCap

log = logging.getLogger(__name__)
_batch_dec = msgspec.json.Decoder(LogBatch)
STATUS_INTERVAL_S = 0.25
LOGS_FIRST_RECHECK_S = 0.5


class RigAgent:
    def __init__(self, rig_dir: Path, settings: RigSettings, leaf_url: str | None = None) -> None:
        self.rig_dir = rig_dir
        self.settings = settings
        self.leaf_url = leaf_url or settings.leaf_url
        self.problems = ProblemLog()
        self.sites = SitePicker(settings, f"foto3d-rig-{settings.rig_id}")
        self.leaf: Bus | None = None
        self.logs: LogSourcing | None = None
        self.datasets: StreamForwarder | None = None
        self.delivery: DatasetDelivery | None = None
        self.link = LinkState.OFFLINE
        self.since = time.time()
        self._tasks: list[asyncio.Task[None]] = []
        self._status_write: asyncio.Future[None] | None = None

    # -- life ---------------------------------------------------------------------------

    async def start(self) -> None:
        remove_stale_temporaries(self.rig_dir)
        self.leaf = leaf = await connect(self.leaf_url, f"foto3d-rig-agent-{self.settings.rig_id}")
        await provision_outbox(leaf.js, self.settings)
        state = self.rig_dir / "state"
        self.logs = LogSourcing(
            leaf.js,
            self.settings,
            self.sites,
            on_stuck=lambda site, err: self.problems.add(problems.sourcing_failing(site, err)),
        )
        self.delivery = DatasetDelivery(
            self.rig_dir,
            self.settings.upload_part_bytes,
            self.problems,
            self._logs_first,
            self.settings.publish_timeout_s,
            RateCap(self.settings.upload_bytes_per_s),
        )
        self.datasets = StreamForwarder(
            leaf.js,
            RIG_DATASETS_STREAM,
            Cursor(state, RIG_DATASETS_STREAM),
            self.sites,
            self.delivery,
            on_stuck=lambda site, err: self.problems.add(
                problems.delivery_failing("a submission", site, err)
            ),
        )
        for subject in RIG_LOGS_SUBJECTS:
            await leaf.nc.subscribe(subject, cb=self._on_log)
        await leaf.nc.subscribe(RIG_DATASETS_ALL, cb=self._on_dataset)
        await self.sites.start()
        for name, coro in (
            ("logs", self.logs.run()),
            ("datasets", self.datasets.run()),
            ("heartbeat", self._heartbeats()),
            ("status", self._status_loop()),
        ):
            self._tasks.append(asyncio.create_task(coro, name=f"rig-{name}"))

    async def wait_broken(self) -> str:
        """Return (with the reason) when a part of the agent has stopped by itself."""
        done, _ = await asyncio.wait([*self._tasks, *self.sites.tasks()], return_when=asyncio.FIRST_COMPLETED)
        task = done.pop()
        exc = None if task.cancelled() else task.exception()
        return f"{task.get_name()} ended: {exc!r}" if exc else f"{task.get_name()} ended"

    async def stop(self) -> None:
        await cancel_and_wait(*self._tasks)
        self._tasks.clear()
        if self._status_write is not None:
            await asyncio.gather(self._status_write, return_exceptions=True)
        await self._send_heartbeat(stopping=True)
        await self.sites.stop()
        if self.leaf is not None:
            await self.leaf.close()
        self._write_status()

    # -- forwarding ---------------------------------------------------------------------

    async def _logs_first(self) -> None:
        """Let an upload chunk go once the site holds every log batch, or once the logs cannot
        move anyway (the site's leaf link is down while the agent reaches it): then the
        uploads must not wait for them."""
        logs = self.logs
        assert logs is not None
        while not logs.caught_up.is_set() and not logs.stuck:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(logs.caught_up.wait(), LOGS_FIRST_RECHECK_S)

    async def _on_dataset(self, msg: Msg) -> None:
        if self.datasets is not None:
            self.datasets.wake.set()

    async def _on_log(self, msg: Msg) -> None:
        if self.logs is not None:
            self.logs.wake.set()
        # Errors reach the operator at once, from the rig itself, whatever the uplink does.
        try:
            batch = _batch_dec.decode(msg.data)
        except (msgspec.ValidationError, msgspec.DecodeError):
            return
        self.problems.add_batch(batch)

    # -- heartbeats ---------------------------------------------------------------------

    async def _send_heartbeat(self, stopping: bool = False) -> None:
        if self.leaf is None:
            return
        hb = Heartbeat(
            kind="rig",
            id=self.settings.rig_id,
            host=socket.gethostname(),
            version=__version__,
            ts=time.time(),
            interval_s=self.settings.heartbeat_interval_s,
            pending=self.waiting(),
            stopping=stopping,
        )
        # On the rig's own server: it crosses every live leaf link to the sites' watchers.
        with contextlib.suppress(nats.errors.Error, TimeoutError):
            await self.leaf.nc.publish(subjects.heartbeat("rig", self.settings.rig_id), encode(hb))
            await self.leaf.nc.flush(timeout=1)

    async def _heartbeats(self) -> None:
        while True:
            await self._send_heartbeat()
            await asyncio.sleep(self.settings.heartbeat_interval_s)

    # -- status -------------------------------------------------------------------------

    def waiting(self) -> int:
        return (self.logs.waiting if self.logs else 0) + (self.datasets.waiting if self.datasets else 0)

    def status(self) -> RigStatus:
        site = self.sites.current
        link = LinkState.ONLINE if site is not None else LinkState.OFFLINE
        if link != self.link:
            self.link, self.since = link, time.time()
        found = self.problems.items()
        if link == LinkState.OFFLINE:
            found.insert(0, problems.offline(self.since, self.waiting()))
        meter = self.delivery.meter if self.delivery else None
        return RigStatus(
            rig_id=self.settings.rig_id,
            ts=time.time(),
            link=link,
            since=self.since,
            site=site.config.name if site else None,
            sites=self.sites.site_states(),
            logs_waiting=self.logs.waiting if self.logs else 0,
            datasets_waiting=self.datasets.waiting if self.datasets else 0,
            upload=meter.snapshot() if meter else None,
            problems=found,
            forwarded_logs=self.logs.forwarded if self.logs else 0,
            forwarded_datasets=self.datasets.forwarded if self.datasets else 0,
            agent_pid=os.getpid(),
        )

    def _write_status(self) -> None:
        write_status(self.rig_dir, self.status())

    async def _status_loop(self) -> None:
        while True:
            if self.datasets is not None:
                with contextlib.suppress(nats.errors.Error, TimeoutError):
                    await self.datasets.refresh_waiting()
            # Shielded and kept: stop() waits for a write under way, so that it cannot land
            # after (and over) the final status.
            self._status_write = asyncio.ensure_future(asyncio.to_thread(self._write_status))
            await asyncio.shield(self._status_write)
            await asyncio.sleep(STATUS_INTERVAL_S)
