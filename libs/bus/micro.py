"""Registration with the NATS services framework, so `nats micro ls|info|stats` see us."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.micro import add_service
from nats.micro.request import Request
from nats.micro.service import Service

from foto3d.libs.bus.connection import CREDS_ENV
from foto3d.libs.bus.identities import Identity
from foto3d.libs.bus.proof import actor_of, checker_for, roster_path
from foto3d.libs.tracing.consume import consume_span
from foto3d.proto.api import BAD_REQUEST, INTERNAL, UNAUTHORIZED, Api, ServiceError
from foto3d.proto.rules import readable

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
        raise ServiceError(BAD_REQUEST, f"bad request: {readable(exc)}") from None
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
    actor: str | None = None,
) -> Endpoint:
    """The micro endpoint for ``api``: decode the request, run ``handler``, answer by the one rule.

    With ``tasks`` each request is answered from its own task (kept in that set until it
    ends), so a slow one (a publish waits for uploads) does not hold up the next.
    ``decode`` replaces the plain decoding where a service words its errors itself; it
    raises :class:`ServiceError`.

    ``actor`` makes it a management endpoint: the name of the body's field that records who
    acted. The request must then carry its sender's proof (``proof.py``), and that field is
    set from the proven identity before ``handler`` sees the body, whatever the sender wrote.
    """

    async def respond(req: Request) -> None:
        async def run() -> R:
            # The proof first: a sender that cannot show who it is learns nothing, not even
            # whether its body would decode.
            signer = proven_sender(req) if actor is not None else None
            body = decode(req.data) if decode is not None else decode_request(api, req.data)
            if signer is not None and actor is not None:
                body = with_actor(req, body, actor, signer)
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


def plain_handler(api: Api[Q, R], handler: Callable[[Q], Awaitable[R]]) -> Callable[[Msg], Awaitable[None]]:
    """A plain subscription's callback that answers as ``serve(api, handler)`` does: the same
    decoding and the same error rule, for a subject outside the micro service (the queue
    leader's own subjects, where standbys forward the commands they receive)."""

    async def on_msg(msg: Msg) -> None:
        await answer(Request(msg), lambda: handler(decode_request(api, msg.data)), api.subject)

    return on_msg


def proven_sender(req: Request) -> Identity:
    """The identity that signed ``req`` (``proof.py``); ServiceError 401 when none did."""
    roster = roster_path(os.environ.get(CREDS_ENV))
    if roster is None:
        raise ServiceError(
            UNAUTHORIZED,
            "refused: this service has no roster of the site's keys to check who sent the "
            "request (run it with its key, FOTO3D_NATS_CREDS)",
        )
    return checker_for(roster).check(req.subject, req.headers, req.data)


def with_actor(req: Request, body: Q, field: str, signer: Identity) -> Q:
    """``body`` with its ``field`` set to who acted by ``signer``'s word (or refused, 403)."""
    claimed = getattr(body, field)
    proven = actor_of(signer, claimed)
    # Every management action says which key acted, also where a signer names a person.
    named = f"; the request named {claimed!r}" if claimed and claimed != proven else ""
    log.info("%s by %s (signed by %s%s)", req.subject, proven, signer.name, named)
    return msgspec.structs.replace(body, **{field: proven})  # type: ignore[type-var]


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
