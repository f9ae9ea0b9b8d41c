"""The rig agent: forwards the rig's outbox to the site it picked, and reports status.

Runs beside the rig's nats-server (``foto3d rig up``). Two forwarders work at once —
log batches and dataset submissions — each in order from its own cursor. Logs go
first: an upload waits before each part while log batches are waiting. Heartbeats are
live facts, not history: the agent sends the rig's heartbeat (with the number of items
waiting) to the current site, and relays heartbeats published on the rig, only while
a site is reachable. Its status goes to ``<rig>/run/status.json`` several times a
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
from nats.js.api import RawStreamMsg

from foto3d import __version__
from foto3d.libs.bus.connection import Bus, connect
from foto3d.libs.rig import problems
from foto3d.libs.rig.datasets import DatasetDelivery
from foto3d.libs.rig.forward import SiteUnavailable, StreamForwarder
from foto3d.libs.rig.outbox import Cursor, provision_outbox
from foto3d.libs.rig.problems import ProblemLog
from foto3d.libs.rig.settings import RigSettings
from foto3d.libs.rig.sites import SiteLink, SitePicker
from foto3d.libs.rig.status import write_status
from foto3d.libs.tasks import cancel_and_wait
from foto3d.proto import subjects
from foto3d.proto.base import encode
from foto3d.proto.heartbeat import Heartbeat
from foto3d.proto.logs import LogBatch
from foto3d.proto.rig import (
    RIG_DATASETS_ALL,
    RIG_DATASETS_STREAM,
    RIG_LOGS_STREAM,
    RIG_LOGS_SUBJECTS,
    LinkState,
    RigStatus,
)

log = logging.getLogger(__name__)
_batch_dec = msgspec.json.Decoder(LogBatch)
STATUS_INTERVAL_S = 0.25
DIRECT_GET_HEADERS = frozenset(
    {
        "Nats-Stream",
        "Nats-Subject",
        "Nats-Sequence",
        "Nats-Time-Stamp",
        "Nats-Num-Pending",
        "Nats-Last-Sequence",
    }
)


class RigAgent:
    def __init__(self, rig_dir: Path, settings: RigSettings, leaf_url: str | None = None) -> None:
        self.rig_dir = rig_dir
        self.settings = settings
        self.leaf_url = leaf_url or settings.leaf_url
        self.problems = ProblemLog()
        self.sites = SitePicker(settings, f"foto3d-rig-{settings.rig_id}")
        self.leaf: Bus | None = None
        self.logs: StreamForwarder | None = None
        self.datasets: StreamForwarder | None = None
        self.delivery: DatasetDelivery | None = None
        self.link = LinkState.OFFLINE
        self.since = time.time()
        self._tasks: list[asyncio.Task[None]] = []

    # -- life ---------------------------------------------------------------------------

    async def start(self) -> None:
        self.leaf = leaf = await connect(self.leaf_url, f"foto3d-rig-agent-{self.settings.rig_id}")
        await provision_outbox(leaf.js, self.settings)
        state = self.rig_dir / "state"
        self.logs = StreamForwarder(
            leaf.js,
            RIG_LOGS_STREAM,
            Cursor(state, RIG_LOGS_STREAM),
            self.sites,
            self._forward_log,
            on_stuck=lambda site, err: self.problems.add(problems.delivery_failing("logs", site, err)),
        )
        self.delivery = DatasetDelivery(
            self.rig_dir,
            self.settings.upload_part_bytes,
            self.problems,
            self._logs_first,
            self.settings.publish_timeout_s,
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
        await leaf.nc.subscribe(subjects.HEARTBEATS_ALL, cb=self._relay_heartbeat)
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
        done, _ = await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
        task = done.pop()
        exc = None if task.cancelled() else task.exception()
        return f"{task.get_name()} ended: {exc!r}" if exc else f"{task.get_name()} ended"

    async def stop(self) -> None:
        await cancel_and_wait(*self._tasks)
        self._tasks.clear()
        await self._send_heartbeat(stopping=True)
        await self.sites.stop()
        if self.leaf is not None:
            await self.leaf.close()
        self._write_status()

    # -- forwarding ---------------------------------------------------------------------

    async def _forward_log(self, site: SiteLink, msg: RawStreamMsg) -> None:
        assert site.js is not None and msg.subject is not None
        # A direct get adds the rig stream's own headers (Nats-Stream, Nats-Sequence, ...): not for the site.
        headers = {k: v for k, v in (msg.headers or {}).items() if k not in DIRECT_GET_HEADERS}
        # The SDK's batch id; a message from another publisher gets a stable id from its place.
        headers.setdefault("Nats-Msg-Id", f"rig:{self.settings.rig_id}:{RIG_LOGS_STREAM}:{msg.seq}")
        try:
            await site.js.publish(
                msg.subject, msg.data or b"", timeout=self.settings.publish_timeout_s, headers=headers
            )
        except (nats.errors.Error, TimeoutError) as exc:
            raise SiteUnavailable(str(exc) or type(exc).__name__) from exc

    async def _logs_first(self) -> None:
        assert self.logs is not None
        await self.logs.caught_up.wait()

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

    def _live_site(self) -> SiteLink | None:
        site = self.sites.current
        return site if site is not None and site.nc is not None and site.nc.is_connected else None

    async def _relay_heartbeat(self, msg: Msg) -> None:
        site = self._live_site()
        if site is not None and site.nc is not None:
            with contextlib.suppress(nats.errors.Error):
                await site.nc.publish(msg.subject, msg.data, headers=msg.headers)

    async def _send_heartbeat(self, stopping: bool = False) -> None:
        site = self._live_site()
        if site is None or site.nc is None:
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
        with contextlib.suppress(nats.errors.Error):
            await site.nc.publish(subjects.heartbeat("rig", self.settings.rig_id), encode(hb))
            await site.nc.flush(timeout=1)

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
            for fwd in (self.logs, self.datasets):
                if fwd is not None:
                    with contextlib.suppress(nats.errors.Error, TimeoutError):
                        await fwd.refresh_waiting()
            await asyncio.to_thread(self._write_status)
            await asyncio.sleep(STATUS_INTERVAL_S)
