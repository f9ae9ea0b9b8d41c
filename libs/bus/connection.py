"""Connect to NATS: a list of servers, unlimited reconnect, a JetStream context."""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import nats
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from foto3d.libs.bus.proof import RequestSigner
from foto3d.libs.bus.publish import Publisher
from foto3d.libs.bus.tls import client_context_from_env
from foto3d.libs.tracing.propagator import inject
from foto3d.libs.tracing.setup import setup_tracing
from foto3d.proto.api import ERROR_CODE_HEADER, ERROR_HEADER, Api, ServiceError

log = logging.getLogger(__name__)
# How long a request waits for a responder to appear (service restart, leader change).
NO_RESPONDER_GRACE_S = 2.0
# The participant's nkey seed file (``foto3d auth``), when no caller names one.
CREDS_ENV = "FOTO3D_NATS_CREDS"
Q = TypeVar("Q", bound=msgspec.Struct)
R = TypeVar("R")


@dataclass
class Bus:
    """A connection plus its JetStream context and a typed publisher."""

    nc: NATS
    js: JetStreamContext
    name: str
    publisher: Publisher = field(init=False)
    reconnects: int = 0
    disconnected: bool = False
    closing: bool = False
    # Signs every request with this participant's key, so a responder knows who asked
    # (``proof.py``); None when connected without a key.
    signer: RequestSigner | None = None

    def __post_init__(self) -> None:
        self.publisher = Publisher(self.js)

    async def publish(
        self,
        subject: str,
        event: msgspec.Struct,
        *,
        msg_id: str | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 5.0,
        deadline: float | None = 30.0,
    ) -> Any:
        """JetStream publish of a typed event; see :meth:`Publisher.publish`."""
        return await self.publisher.publish(
            subject, event, msg_id=msg_id, headers=headers, timeout=timeout, deadline=deadline
        )

    async def call(
        self, api: Api[Q, R], body: Q, timeout: float = 5.0, no_responder_grace: float = NO_RESPONDER_GRACE_S
    ) -> R:
        """Call an endpoint declared in ``proto``; its refusal is raised as :class:`ServiceError`."""
        reply: R = await self.request(api.subject, body, api.reply, timeout, no_responder_grace)
        return reply

    async def request(
        self,
        subject: str,
        body: msgspec.Struct,
        reply_type: Any,
        timeout: float = 5.0,
        no_responder_grace: float = NO_RESPONDER_GRACE_S,
    ) -> Any:
        """Core request/reply with typed body and reply (used for micro endpoints).

        An error reply (``Nats-Service-Error-Code`` header) is raised as :class:`ServiceError`.
        "No responders" is retried for up to ``NO_RESPONDER_GRACE_S``: while a service
        (re)starts or a standby takes over, its endpoints are briefly absent, and a client
        should ride that out rather than fail. Past the grace the error is raised, so a
        service that is not running at all is still reported within seconds. A caller that
        asks whether the service runs at all passes ``no_responder_grace=0``.
        """
        payload = msgspec.json.encode(body)
        loop = asyncio.get_running_loop()
        give_up = loop.time() + min(no_responder_grace, timeout)
        while True:
            # Signed afresh each try: a nonce is good for one delivery.
            headers = self.signer.headers(subject, payload) if self.signer else {}
            # The handler's span (``micro.answer``) continues the caller's trace.
            inject(headers)
            try:
                msg = await self.nc.request(subject, payload, timeout=timeout, headers=headers or None)
                break
            except nats.errors.NoRespondersError:
                if loop.time() >= give_up:
                    raise
                await asyncio.sleep(0.1)
        answer = msg.headers or {}
        if ERROR_CODE_HEADER in answer:
            raise ServiceError(answer[ERROR_CODE_HEADER], answer.get(ERROR_HEADER, "") or "refused")
        return msgspec.json.decode(msg.data, type=reply_type)

    @property
    def connected(self) -> bool:
        return bool(self.nc.is_connected)

    async def close(self) -> None:
        self.closing = True
        if not self.nc.is_closed:
            try:
                await self.nc.drain()
            except Exception:
                try:
                    await self.nc.close()
                except Exception:  # the server is already gone; nothing left to flush
                    pass


async def connect(
    urls: list[str] | str,
    name: str,
    *,
    retry_initial: bool = True,
    initial_timeout: float | None = None,
    reconnect_wait: float = 0.5,
    js_timeout: float = 5.0,
    domain: str | None = None,
    creds: str | Path | None = None,
) -> Bus:
    """Connect to any of ``urls`` and never give up reconnecting afterwards.

    nats-py's default gives up after about two minutes of outage; a trainer or
    rig must outlive much longer ones, so reconnect attempts are unlimited.
    With ``retry_initial`` the first connection is retried too (a service may
    start before its server), until ``initial_timeout`` if given.

    ``creds`` is the participant's nkey seed file (``foto3d auth``); without it, the
    file named by ``FOTO3D_NATS_CREDS``, else none (a server with authorization on
    refuses the connection).
    """
    creds_file = str(creds) if creds else os.environ.get(CREDS_ENV) or None
    # Off the host the bus runs TLS with the site's private CA (``libs/bus/tls.py``).
    tls = client_context_from_env()
    servers = [urls] if isinstance(urls, str) else list(urls)
    # Spans (and so traceparent headers) need a real provider; first caller names it.
    setup_tracing(name.removeprefix("foto3d-"))
    holder: dict[str, Bus] = {}

    async def on_disconnect() -> None:
        bus = holder.get("bus")
        if bus is not None:
            bus.disconnected = True
            if bus.closing:
                return  # our own close(), not an outage
        log.warning("%s: disconnected from NATS", name)

    async def on_reconnect() -> None:
        if "bus" in holder:
            holder["bus"].disconnected = False
            holder["bus"].reconnects += 1
        log.info("%s: reconnected to NATS at %s", name, nc.connected_url.netloc if nc.connected_url else "?")

    async def on_error(exc: Exception) -> None:
        if "violation" in str(exc).lower():
            # A role used a subject it may not (or the key was revoked): worth seeing.
            log.warning("%s: NATS refused: %s", name, exc)
        else:
            log.debug("%s: NATS error: %s", name, exc)

    loop = asyncio.get_running_loop()
    started = loop.time()
    delay = 0.2
    while True:
        nc = NATS()
        try:
            await nc.connect(
                servers=servers,
                name=name,
                max_reconnect_attempts=-1,
                reconnect_time_wait=reconnect_wait,  # type: ignore[arg-type]
                connect_timeout=2,
                allow_reconnect=True,
                disconnected_cb=on_disconnect,
                reconnected_cb=on_reconnect,
                error_cb=on_error,
                ping_interval=5,
                max_outstanding_pings=2,
                pending_size=8 * 1024 * 1024,
                nkeys_seed=creds_file,
                tls=tls,
            )
            break
        except (TimeoutError, nats.errors.NoServersError, OSError) as exc:
            if not retry_initial or (initial_timeout is not None and loop.time() - started > initial_timeout):
                raise ConnectionError(f"cannot reach NATS at {', '.join(servers)}: {exc}") from exc
            log.warning("%s: NATS not reachable at %s (%s); retrying", name, ", ".join(servers), exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
    js = nc.jetstream(timeout=js_timeout, domain=domain)
    bus = Bus(nc=nc, js=js, name=name, signer=RequestSigner.from_file(creds_file) if creds_file else None)
    holder["bus"] = bus
    return bus
