"""What every service is: a name, a version, start/stop, health, routes and pages.

``foto3d up`` runs many services in one process; ``foto3d serve NAME`` runs one.
Both build the same :class:`ServiceContext` and call the same methods, so a
service cannot tell the two apart.
"""

from __future__ import annotations

import abc
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from aiohttp import web

from foto3d import __version__
from foto3d.libs.bus.connection import Bus
from foto3d.libs.bus.micro import Endpoint
from foto3d.libs.bus.topology import ConsumerSpec, KVSpec, ObjectStoreSpec
from foto3d.libs.config import Settings
from foto3d.libs.metrics import Metrics

State = Literal["starting", "ok", "degraded", "down", "stopped"]


@dataclass
class Health:
    state: State
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"state": self.state, "detail": self.detail, **self.extra}


@dataclass(frozen=True)
class NavLink:
    """An entry in the dashboard's navigation bar."""

    title: str
    href: str
    order: int = 50


@dataclass
class ServiceContext:
    settings: Settings
    bus: Bus
    nats_urls: list[str]
    host: str = field(default_factory=socket.gethostname)
    # Where links in mails and pages point (the dashboard of `up`, or public_url).
    base_url: str = ""
    # The runtime's one registry: services add their collectors here (served at /metrics).
    metrics: Metrics = field(default_factory=Metrics)

    def data_dir(self, service: str) -> Path:
        return self.settings.service_dir(service)


class Service(abc.ABC):
    name: ClassVar[str]
    description: ClassVar[str]
    version: ClassVar[str] = __version__
    # The durable consumers (on the shared streams) and KV buckets this service reads; the
    # runtime provisions every registered service's before any starts.
    consumer_specs: ClassVar[tuple[ConsumerSpec, ...]] = ()
    bucket_specs: ClassVar[tuple[KVSpec, ...]] = ()
    object_store_specs: ClassVar[tuple[ObjectStoreSpec, ...]] = ()
    # Whether this service's own WARNING/ERROR records go to the log server. False for a
    # service that consumes the logs itself: its failures must not feed themselves.
    ships_own_logs: ClassVar[bool] = True

    def __init__(self) -> None:
        self.ctx: ServiceContext | None = None
        self.instance_id = f"{socket.gethostname()}-{id(self):x}"[-40:]

    @property
    def context(self) -> ServiceContext:
        if self.ctx is None:
            raise RuntimeError(f"service {self.name} used before start()")
        return self.ctx

    @abc.abstractmethod
    async def start(self, ctx: ServiceContext) -> None:
        """Open stores, start consumers; return once the service is working."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Finish in-flight work and release everything; idempotent."""

    def health(self) -> Health:
        return Health("ok" if self.ctx else "starting")

    def endpoints(self) -> list[Endpoint]:
        """NATS request/reply endpoints registered with nats.micro."""
        return []

    def routes(self) -> list[web.AbstractRouteDef]:
        """HTTP API routes and dashboard pages."""
        return []

    def nav(self) -> list[NavLink]:
        return []

    def banner(self) -> list[str]:
        """Lines printed at startup (e.g. 'mail goes to the local outbox')."""
        return []
