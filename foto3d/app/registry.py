"""Every service the system knows, imported lazily by name."""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass

from foto3d.libs.service import Service


@dataclass(frozen=True)
class ServiceEntry:
    name: str
    target: str  # "module:ClassName"
    in_up: bool = True
    summary: str = ""

    @property
    def module(self) -> str:
        return self.target.split(":", 1)[0]

    def available(self) -> bool:
        try:
            return importlib.util.find_spec(self.module) is not None
        except ModuleNotFoundError:
            return False

    def service_class(self) -> type[Service]:
        mod_name, cls_name = self.target.split(":", 1)
        cls = getattr(importlib.import_module(mod_name), cls_name)
        if not (isinstance(cls, type) and issubclass(cls, Service)):
            raise TypeError(f"{self.target} is not a Service")
        return cls

    def create(self) -> Service:
        return self.service_class()()


# Start order matters for `up`: stores first, then those that feed them.
SERVICES: list[ServiceEntry] = [
    ServiceEntry(
        "log_collector",
        "foto3d.services.log_collector.service:LogCollector",
        summary="stores log batches; search and live tail",
    ),
    ServiceEntry(
        "notifier",
        "foto3d.services.notifier.service:Notifier",
        summary="alerts by email on errors and interruptions",
    ),
    ServiceEntry(
        "queue",
        "foto3d.services.queue.service:QueueService",
        summary="job records, retries, priorities, dead letters",
    ),
    ServiceEntry(
        "catalog",
        "foto3d.services.catalog.service:CatalogService",
        summary="objects, naming standard, timeline, approvals",
    ),
    ServiceEntry(
        "publisher",
        "foto3d.services.publisher.service:PublisherService",
        summary="uploads approved models to S3 or a local store",
    ),
    ServiceEntry(
        "token_gateway",
        "foto3d.services.token_gateway.service:TokenGateway",
        summary="time-limited customer links, rate limits, bans",
    ),
    ServiceEntry(
        "scaler", "foto3d.services.scaler.service:Scaler", summary="starts and stops trainers on demand"
    ),
    ServiceEntry(
        "trainer",
        "foto3d.services.trainer.service:Trainer",
        in_up=False,
        summary="runs nerfstudio on one dataset at a time (GPU host)",
    ),
]


def by_name(name: str) -> ServiceEntry:
    norm = name.replace("-", "_")
    for e in SERVICES:
        if e.name == norm:
            return e
    known = ", ".join(e.name for e in SERVICES if e.available())
    raise KeyError(f"unknown service {name!r} (known: {known})")


def available_services(in_up_only: bool = False) -> list[ServiceEntry]:
    return [e for e in SERVICES if e.available() and (e.in_up or not in_up_only)]
