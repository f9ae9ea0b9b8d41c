"""A small aiohttp site on a free loopback port, for pages a test serves itself.

A shop page on another origin, a cross-site attacker's page, a stand-in CDN: each is a
handful of routes on their own origin, started and cleaned up the same way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web


@asynccontextmanager
async def local_site(app: web.Application, host: str = "127.0.0.1") -> AsyncIterator[int]:
    """Serve ``app`` on ``host`` at a free port (yielded) until the block ends."""
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    port: int = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield port
    finally:
        await runner.cleanup()
