"""The customer listener: its own aiohttp app and port, apart from the staff dashboard.

One middleware guards every route, in this order: client address (``X-Forwarded-For`` only
from trusted proxies), allow/deny lists, bans, the per-IP token bucket; then the handler;
then CORS and one access-log record, whatever the outcome. Header sizes are capped by the
HTTP parser itself (aiohttp answers 400 before any handler runs), bodies by ``client_max_size``.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import msgspec
from aiohttp import web

from foto3d.libs.web.client_faults import server_logger
from foto3d.proto.gateway import ErrorReply
from foto3d.services.token_gateway import refusal
from foto3d.services.token_gateway.abuse import client_network
from foto3d.services.token_gateway.accesslog import Access
from foto3d.services.token_gateway.parts import PARTS_KEY, GatewayParts

log = logging.getLogger(__name__)

HTTP_ERRORS = {404: "not_found", 405: "method_not_allowed"}


# The HTTP server's own log (parse errors, lost connections), apart from the request handlers':
# a stranger's unparseable request is a WARNING there.
server_log = server_logger(__name__ + ".server")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class RequestNote:
    """What a handler learned about a request, for the access log and CORS."""

    ip: str
    customer: str = ""
    object_id: str = ""
    credential_id: str = ""
    bytes: int = 0
    reason: str = ""
    cors_origin: str = ""


NOTE_KEY: web.RequestKey[RequestNote] = web.RequestKey("f3d_note", RequestNote)


def note(request: web.Request) -> RequestNote:
    return request[NOTE_KEY]


def error_response(status: int, error: str, message: str, retry_after: float = 0.0) -> web.Response:
    resp = web.Response(
        status=status,
        body=msgspec.json.encode(ErrorReply(error=error, message=message)),
        content_type="application/json",
    )
    if retry_after:
        resp.headers["Retry-After"] = str(max(1, int(retry_after + 0.999)))
    resp.headers["Cache-Control"] = "no-store"
    return resp


def client_ip(parts: GatewayParts, request: web.Request) -> str:
    peer = request.remote or ""
    if not parts.trusted_proxies:
        return peer
    try:
        addr = ipaddress.ip_address(peer)
    except ValueError:
        return peer
    if not any(addr in n for n in parts.trusted_proxies):
        return peer
    forwarded = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
    # The rightmost address our proxies did not add is the client's; anything left of it is hearsay.
    for hop in reversed(forwarded):
        try:
            hop_addr = ipaddress.ip_address(hop)
        except ValueError:
            return peer
        if not any(hop_addr in n for n in parts.trusted_proxies):
            return hop
    return peer


_KEEPS_NO_ADDRESS: set[Handler] = set()


def keeps_no_address(handler: Handler) -> Handler:
    """Mark a route whose access records carry the client's /24 or /48, never its address,
    whatever the answer (bans, decided on the whole address, keep it until they end)."""
    _KEEPS_NO_ADDRESS.add(handler)
    return handler


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    parts = request.app[PARTS_KEY]
    started = time.perf_counter()
    ip = client_ip(parts, request)
    n = RequestNote(ip=ip)
    request[NOTE_KEY] = n
    resp: web.StreamResponse
    if not parts.ip_filter.admits(ip):
        n.reason = "ip not allowed"
        resp = error_response(403, "forbidden", "requests from this address are not allowed")
    elif (until := parts.bans.banned_until(ip)) is not None:
        n.reason = "banned"
        resp = error_response(
            403, "banned", "too many bad credentials from this address", retry_after=until - time.time()
        )
    elif (
        request.body_exists
        and (request.content_length or parts.cfg.max_body_bytes + 1) > parts.cfg.max_body_bytes
    ):
        # Every customer route but the beacon (whose own limit is lower) is a GET: a large (or
        # unsized, chunked) body is refused unread.
        n.reason = "body too large"
        resp = error_response(
            413, "bad_request", f"request bodies are limited to {parts.cfg.max_body_bytes} bytes"
        )
    elif wait := parts.ip_buckets.take(ip):
        n.reason = "ip rate"
        resp = error_response(429, "rate_limited", "too many requests from this address", retry_after=wait)
    else:
        try:
            resp = await handler(request)
        except web.HTTPException as exc:  # the router's 404 and 405
            resp = error_response(exc.status, HTTP_ERRORS.get(exc.status, "bad_request"), exc.reason)
            if "Allow" in exc.headers:  # RFC 9110: a 405 says which methods the resource takes
                resp.headers["Allow"] = exc.headers["Allow"]
        except Exception:
            log.exception("customer request %s %s failed", request.method, request.path)
            n.reason = "internal error"
            resp = error_response(500, "internal", "the gateway could not answer; try again")
    if refusal.is_embed_page(request):
        resp = refusal.as_card(resp)
    if n.cors_origin:
        resp.headers["Access-Control-Allow-Origin"] = n.cors_origin
        resp.headers["Access-Control-Expose-Headers"] = "Content-Length, Retry-After"
    resp.headers.setdefault("Vary", "Origin")
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    access = Access(
        method=request.method,
        path=request.path,
        status=resp.status,
        # routes that keep no whole address (the viewer's beacons) log the client's network
        ip=client_network(ip) if request.match_info.handler in _KEEPS_NO_ADDRESS else ip,
        ms=(time.perf_counter() - started) * 1000,
        bytes=n.bytes,
        customer=n.customer,
        object_id=n.object_id,
        credential_id=n.credential_id,
        reason=n.reason,
    )
    if isinstance(resp, web.FileResponse):
        # A file response picks what it sends while it is sent (a precompressed variant, a
        # range, a 304): its record is written then, in log_file_sent.
        request[PENDING_KEY] = access
    else:
        record_access(parts, access)
    return resp


PENDING_KEY: web.RequestKey[Access] = web.RequestKey("f3d_access", Access)


async def log_file_sent(request: web.Request, resp: web.StreamResponse) -> None:
    """``on_response_prepare``: a file response's access record, with the status and the byte
    count it goes out with (its headers are final now, its body not yet sent)."""
    access = request.get(PENDING_KEY)
    if access is not None:
        del request[PENDING_KEY]
        sent = (resp.content_length or 0) if resp.status < 300 else 0
        record_access(request.app[PARTS_KEY], replace(access, status=resp.status, bytes=sent))


def record_access(parts: GatewayParts, access: Access) -> None:
    """One answered request: into the access log, and into the metrics where they are on."""
    parts.access.add(access)
    if parts.metrics is not None:
        parts.metrics.observe(access)


def build_app(
    parts: GatewayParts, routes: list[web.AbstractRouteDef], inner: list[Any] | None = None
) -> web.Application:
    """``inner``: middlewares run inside the guard (the portal's sign-in gate)."""
    app = web.Application(middlewares=[guard, *(inner or [])], client_max_size=parts.cfg.max_body_bytes)
    app[PARTS_KEY] = parts
    app.on_response_prepare.append(log_file_sent)
    app.router.add_routes(routes)
    return app


class Listener:
    def __init__(self, app: web.Application, cfg_host: str, cfg_port: int, max_header_bytes: int) -> None:
        self.app = app
        self.host = cfg_host
        self.port = cfg_port
        self.max_header_bytes = max_header_bytes
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self._runner = web.AppRunner(
            self.app,
            access_log=None,
            shutdown_timeout=2.0,
            max_line_size=self.max_header_bytes,
            max_field_size=self.max_header_bytes,
            max_headers=64,
            logger=server_log,
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise OSError(
                f"token gateway cannot listen on {self.host}:{self.port} ({exc.strerror}); "
                "set [token_gateway] port or FOTO3D_GATEWAY_PORT"
            ) from exc
        sockets = getattr(site._server, "sockets", None) or []
        if sockets:
            self.port = int(sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
