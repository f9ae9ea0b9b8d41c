"""`foto3d rig panel`: a small local web page for the operator.

The page asks ``/api/status`` several times a second. The answer is the agent's
status file plus errors the panel sees itself: it listens to the rig's own server for
log records at ERROR and above, so an error shows within a second even while the rig
is offline or the agent is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from importlib import resources
from pathlib import Path

import msgspec
import nats.errors
from aiohttp import web
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from foto3d.libs.tasks import cancel_and_wait
from foto3d.libs.web.client_faults import server_logger
from foto3d.proto.logs import LogBatch
from foto3d.proto.rig import RIG_LOGS_SUBJECTS, RigStatus
from foto3d.rig.problems import ProblemLog
from foto3d.rig.settings import RigSettings
from foto3d.rig.status import read_status

log = logging.getLogger(__name__)
_batch_dec = msgspec.json.Decoder(LogBatch)
_enc = msgspec.json.Encoder()


async def _quiet(exc: Exception) -> None:
    log.debug("rig server connection: %s", exc)


class Panel:
    def __init__(self, rig_dir: Path, settings: RigSettings, leaf_url: str | None = None) -> None:
        self.rig_dir = rig_dir
        self.settings = settings
        self.leaf_url = leaf_url or settings.leaf_url
        self.seen = ProblemLog()
        self.nc: NATS | None = None
        self._task: asyncio.Task[None] | None = None
        self._runner: web.AppRunner | None = None
        self.url = ""

    def status(self) -> RigStatus:
        status = read_status(self.rig_dir, self.settings.rig_id)
        known = {(p.ts, p.text) for p in status.problems}
        extra = [p for p in self.seen.items() if (p.ts, p.text) not in known]
        if not extra:
            return status
        merged = sorted([*extra, *status.problems], key=lambda p: p.ts, reverse=True)
        return msgspec.structs.replace(status, problems=merged)

    async def _listen(self) -> None:
        async def on_batch(msg: Msg) -> None:
            with contextlib.suppress(msgspec.ValidationError, msgspec.DecodeError):
                self.seen.add_batch(_batch_dec.decode(msg.data))

        delay = 0.2
        while True:
            nc = NATS()
            try:
                await nc.connect(
                    servers=[self.leaf_url],
                    name="foto3d-rig-panel",
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,  # type: ignore[arg-type]
                    connect_timeout=2,
                    error_cb=_quiet,
                )
            except (TimeoutError, nats.errors.NoServersError, OSError):
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            self.nc = nc
            for subject in RIG_LOGS_SUBJECTS:
                await nc.subscribe(subject, cb=on_batch)
            return

    async def _page(self, request: web.Request) -> web.Response:
        html = resources.files("foto3d.rig").joinpath("panel.html").read_text()
        return web.Response(text=html, content_type="text/html")

    async def _api(self, request: web.Request) -> web.Response:
        return web.Response(body=_enc.encode(self.status()), content_type="application/json")

    async def start(self, host: str = "127.0.0.1", port: int | None = None) -> str:
        self._task = asyncio.create_task(self._listen(), name="rig-panel-listen")
        app = web.Application()
        app.router.add_get("/", self._page)
        app.router.add_get("/api/status", self._api)
        # a stranger's unparseable request is a WARNING, not an alert (see client_faults)
        self._runner = web.AppRunner(app, access_log=None, logger=server_logger(__name__ + ".server"))
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, self.settings.panel_port if port is None else port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        bound = sockets[0].getsockname()[1] if sockets else port
        self.url = f"http://{host}:{bound}/"
        return self.url

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        if self.nc is not None and not self.nc.is_closed:
            with contextlib.suppress(Exception):
                await self.nc.close()
        if self._runner is not None:
            await self._runner.cleanup()
