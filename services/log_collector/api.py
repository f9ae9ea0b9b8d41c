"""HTTP API: ``GET /api/logs`` (search), ``GET /api/logs/stream`` (SSE live tail), stats."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import msgspec
from aiohttp import web

from foto3d.services.log_collector.params import BadParam, query_from_params
from foto3d.services.log_collector.store import LogStore
from foto3d.services.log_collector.tail import TailHub

_json = msgspec.json.Encoder()
# Comment lines keep proxies and browsers from closing an idle stream.
KEEPALIVE_S = 15.0
# A page of long records ends early here (``next_before`` says where the rest starts):
# 5,000 records with tracebacks would otherwise be hundreds of MB in one response.
HTTP_PAGE_BYTES = 8 * 1024 * 1024


def _error(status: int, message: str) -> web.Response:
    return web.Response(status=status, body=_json.encode({"error": message}), content_type="application/json")


class LogHttpApi:
    def __init__(self, store: LogStore, hub: TailHub, stats: Callable[[], dict[str, Any]]) -> None:
        self.store = store
        self.hub = hub
        self.stats = stats

    def routes(self) -> list[web.AbstractRouteDef]:
        return [
            web.get("/api/logs", self.search),
            web.get("/api/logs/stream", self.stream),
            web.get("/api/logs/stats", self.get_stats),
        ]

    async def search(self, request: web.Request) -> web.Response:
        try:
            q = query_from_params(request.query)
        except BadParam as exc:
            return _error(400, str(exc))
        reply = await self.store.query(q, max_bytes=HTTP_PAGE_BYTES)
        return web.Response(body=_json.encode(reply), content_type="application/json")

    async def get_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: one ``message`` event per new record (JSON, ``id`` = store id).

        A client that falls behind gets a ``gap`` event saying how many records it missed.
        """
        try:
            q = query_from_params(request.query)
        except BadParam as exc:
            return _error(400, str(exc))
        sub = self.hub.subscribe(q)
        resp = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        try:
            await resp.prepare(request)
            await resp.write(b": connected\n\nretry: 2000\n\n")
            while True:
                try:
                    chunk = await asyncio.wait_for(sub.queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    await resp.write(b": keepalive\n\n")
                    continue
                if chunk is None:
                    break
                parts: list[bytes] = []
                if sub.dropped:
                    parts.append(b"event: gap\ndata: " + _json.encode({"dropped": sub.dropped}) + b"\n\n")
                    sub.dropped = 0
                for r in chunk:
                    parts.append(b"id: %d\ndata: " % r.id + _json.encode(r) + b"\n\n")
                await resp.write(b"".join(parts))
        except ConnectionResetError:
            return resp  # the client went away
        finally:
            self.hub.unsubscribe(sub)
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            await resp.write_eof()
        return resp
