"""Run a set of services against a NATS cluster: connect, provision, start, serve HTTP."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from nats.micro.service import Service as MicroService

from foto3d import __version__
from foto3d.app.http import build_app
from foto3d.app.registry import ServiceEntry
from foto3d.app.system_metrics import SystemMetrics
from foto3d.app.topology import assemble
from foto3d.libs.auth import Auth
from foto3d.libs.bus.connection import Bus, connect
from foto3d.libs.bus.micro import register
from foto3d.libs.bus.settings import SETTINGS as BUS_SETTINGS
from foto3d.libs.bus.topology import Topology, provision
from foto3d.libs.config import Settings
from foto3d.libs.heartbeat import HeartbeatSender
from foto3d.libs.logsdk.service_logs import ServiceLogs, service_context
from foto3d.libs.metrics import Metrics
from foto3d.libs.metrics.settings import SETTINGS as METRICS_SETTINGS
from foto3d.libs.metrics.web import metrics_route
from foto3d.libs.service import Health, NavLink, Service, ServiceContext
from foto3d.libs.tracing.setup import setup_tracing
from foto3d.libs.web.client_faults import server_logger

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    nats_urls: list[str]
    entries: list[ServiceEntry]
    http: bool = True
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    services: list[Service] = field(default_factory=list)
    buses: dict[str, Bus] = field(default_factory=dict)
    micro: list[MicroService] = field(default_factory=list)
    started_at: float = field(default_factory=time.time)
    _runner: web.AppRunner | None = None
    _control: Bus | None = None
    http_url: str = ""
    auth: Auth | None = None
    extra_health: dict[str, Any] = field(default_factory=dict)
    # Components that only the composition root knows (the embedded server, the disk).
    extra_health_fns: dict[str, Callable[[], Health]] = field(default_factory=dict)
    heartbeats: list[HeartbeatSender] = field(default_factory=list)
    # What to provision (None: every registered service's, as assembled); `up` passes the
    # assembled table with stream limits sized to its disk.
    topology: Topology | None = None
    # Make the server match the declared topology first; off for a role that may not.
    provision_topology: bool = True
    # One registry for every service of this process, served at /metrics.
    metrics: Metrics = field(default_factory=Metrics)
    # Ship the services' own WARNING/ERROR records to the log server (off: stderr only).
    ship_logs: bool = True
    service_logs: ServiceLogs | None = None

    async def start(self) -> None:
        setup_tracing(self.entries[0].name if len(self.entries) == 1 else "up")
        self._control = await connect(self.nats_urls, "foto3d-runtime")
        topology = self.topology if self.topology is not None else assemble()
        if self.provision_topology:
            await provision(self._control.js, topology, replicas=BUS_SETTINGS.load(self.settings).replicas)
        SystemMetrics(self._control, self.settings.data_dir, topology).install(self.metrics)
        base_url = self.settings.public_url or f"http://{self.http_host}:{self.http_port}"
        quiet = frozenset(e.name for e in self.entries if not e.service_class().ships_own_logs)
        if self.ship_logs:
            name = self.entries[0].name if len(self.entries) == 1 else "up"
            self.service_logs = ServiceLogs(
                f"{name}.{socket.gethostname()}", self.nats_urls, self.settings.data_dir, quiet
            )
        for entry in self.entries:
            svc = entry.create()
            # Everything the service starts (its connection's tasks too) runs in its context,
            # which tells the log handler whose record it is.
            with service_context(entry.name):
                bus = await connect(self.nats_urls, f"foto3d-{entry.name}")
                self.buses[entry.name] = bus
                ctx = ServiceContext(
                    settings=self.settings,
                    bus=bus,
                    nats_urls=self.nats_urls,
                    base_url=base_url,
                    metrics=self.metrics,
                )
                await svc.start(ctx)
            self.services.append(svc)
            hb = HeartbeatSender(
                bus,
                "service",
                f"{entry.name}.{svc.instance_id}",
                host=ctx.host,
                version=svc.version,
                lineage=entry.name,
                site=self.settings.site,
            )
            self.heartbeats.append(hb)
            hb.start()
            self.micro.append(
                await register(
                    bus.nc,
                    entry.name,
                    svc.version,
                    svc.description,
                    svc.endpoints(),
                    {"host": ctx.host, "instance": svc.instance_id},
                )
            )
            # The endpoints' subscriptions must reach the server before anyone is told we run.
            await bus.nc.flush()
            log.info("started %s", entry.name)
        if self.http:
            await self._start_http()

    async def _start_http(self) -> None:
        routes: list[web.AbstractRouteDef] = []
        nav: list[NavLink] = []
        for svc in self.services:
            routes += svc.routes()
            nav += svc.nav()
        # The one Auth that answers /login: its sign-in limits are shared over the bus.
        auth = self.auth = Auth(self.settings, bus=self._control)
        await auth.start()
        routes += auth.routes()
        nav += auth.nav()
        routes.append(metrics_route(self.metrics, METRICS_SETTINGS.load(self.settings).token, auth.user))
        app = build_app(
            routes,
            nav,
            self.health,
            auth.user,
            guards=[auth.csrf_guard(self.settings.public_url)],
            after_sign_in=[auth.steps_guard()],
        )
        # a stranger's unparseable request is a WARNING, not an alert (see client_faults)
        self._runner = web.AppRunner(
            app, access_log=None, shutdown_timeout=2.0, logger=server_logger("foto3d.app.http.server")
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.http_host, self.http_port)
        try:
            await site.start()
        except OSError as exc:
            raise OSError(
                f"cannot listen on {self.http_host}:{self.http_port} ({exc.strerror}); "
                "pick another with --port"
            ) from exc
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        port = sockets[0].getsockname()[1] if sockets else self.http_port
        self.http_port = port
        self.http_url = f"http://{self.http_host}:{port}"
        for svc in self.services:
            if svc.ctx is not None and not self.settings.public_url:
                svc.ctx.base_url = self.http_url

    def health(self) -> dict[str, Any]:
        comps: dict[str, dict[str, Any]] = {}
        ctrl = self._control
        comps["nats"] = Health(
            "ok" if ctrl and ctrl.connected else "down",
            ", ".join(self.nats_urls),
        ).as_dict()
        comps.update(self.extra_health)
        for name, fn in self.extra_health_fns.items():
            try:
                comps[name] = fn().as_dict()
            except Exception as exc:
                comps[name] = Health("down", f"health check failed: {exc!r}").as_dict()
        for svc in self.services:
            try:
                comps[svc.name] = svc.health().as_dict()
            except Exception as exc:
                comps[svc.name] = Health("down", f"health check failed: {exc!r}").as_dict()
        states = [c.get("state") for c in comps.values()]
        overall = "down" if "down" in states else ("degraded" if "degraded" in states else "ok")
        return {
            "status": overall,
            "version": __version__,
            "uptime_s": round(time.time() - self.started_at, 1),
            "components": comps,
        }

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.auth is not None:
            await self.auth.stop()
            self.auth = None
        for hb in self.heartbeats:
            await hb.stop(clean=True)  # a planned stop, not an interruption
        for m in self.micro:
            try:
                await m.stop()
            except Exception:
                pass
        for svc in reversed(self.services):
            try:
                await asyncio.wait_for(svc.stop(), timeout=30)
            except Exception:
                log.exception("stopping %s failed", svc.name)
        for bus in self.buses.values():
            await bus.close()
        if self._control:
            await self._control.close()
        if self.service_logs is not None:
            # Last, so that warnings from stopping the services still go out.
            await asyncio.to_thread(self.service_logs.close)
            self.service_logs = None
