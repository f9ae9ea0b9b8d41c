"""Registration with the NATS services framework, so `nats micro ls|info|stats` see us."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from nats.aio.client import Client as NATS
from nats.micro import add_service
from nats.micro.request import Request
from nats.micro.service import Service

MicroHandler = Callable[[Request], Awaitable[None]]


@dataclass(frozen=True)
class Endpoint:
    name: str
    subject: str
    handler: MicroHandler
    # Load-balanced across instances by default; None = every instance answers.
    queue_group: str | None = "q"


def micro_name(service: str) -> str:
    return "foto3d-" + service.replace("_", "-")


async def register(
    nc: NATS,
    service: str,
    version: str,
    description: str,
    endpoints: list[Endpoint],
    metadata: dict[str, str],
) -> Service:
    svc = await add_service(
        nc, name=micro_name(service), version=version, description=description, metadata=metadata
    )
    for ep in endpoints:
        await svc.add_endpoint(
            name=ep.name, subject=ep.subject, handler=ep.handler, queue_group=ep.queue_group
        )
    return svc
