"""Registration with the NATS services framework, so `nats micro ls|info|stats` see us."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec
from nats.aio.client import Client as NATS
from nats.micro import add_service
from nats.micro.request import Request
from nats.micro.service import Service

from foto3d.libs.tracing.consume import consume_span
from foto3d.proto.api import BAD_REQUEST, INTERNAL, Api, ServiceError

log = logging.getLogger(__name__)
MicroHandler = Callable[[Request], Awaitable[None]]
Q = TypeVar("Q")
R = TypeVar("R")
_encoder = msgspec.json.Encoder()


@dataclass(frozen=True)
class Endpoint:
    name: str
    subject: str
    handler: MicroHandler
    # Load-balanced across instances by default; None = every instance answers.
    queue_group: str | None = "q"


def decode_request(api: Api[Q, Any], data: bytes) -> Q:
    """The request body of ``api``; an empty body is an empty object (every field defaulted)."""
    try:
        req: Q = msgspec.json.decode(data or b"{}", type=api.request)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ServiceError(BAD_REQUEST, f"bad request: {exc}") from None
    return req


async def answer(req: Request, run: Callable[[], Awaitable[Any]], what: str) -> None:
    """Respond with ``run()``'s result, or with the micro error headers when it raises."""
    try:
        # The handler's work (and what it publishes) joins the caller's trace.
        with consume_span(req.subject, req.headers, name=what):
            result = await run()
    except ServiceError as exc:
        await req.respond_error(exc.code, exc.description)
        return
    except Exception as exc:
        log.exception("%s failed", what)
        await req.respond_error(INTERNAL, f"internal error: {exc!r}")
        return
    await req.respond(_encoder.encode(result))


def serve(
    api: Api[Q, R],
    handler: Callable[[Q], Awaitable[R]],
    *,
    tasks: set[asyncio.Task[None]] | None = None,
    decode: Callable[[bytes], Q] | None = None,
    queue_group: str | None = "q",
) -> Endpoint:
    """The micro endpoint for ``api``: decode the request, run ``handler``, answer by the one rule.

    With ``tasks`` each request is answered from its own task (kept in that set until it
    ends), so a slow one (a publish waits for uploads) does not hold up the next.
    ``decode`` replaces the plain decoding where a service words its errors itself; it
    raises :class:`ServiceError`.
    """

    async def respond(req: Request) -> None:
        async def run() -> R:
            body = decode(req.data) if decode is not None else decode_request(api, req.data)
            return await handler(body)

        await answer(req, run, api.subject)

    async def on_request(req: Request) -> None:
        if tasks is None:
            await respond(req)
            return
        task = asyncio.create_task(respond(req), name=api.subject)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    return Endpoint(api.name, api.subject, on_request, queue_group)


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
