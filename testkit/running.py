"""Services running in this process against a real NATS, as `foto3d up` runs them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from foto3d.app.registry import by_name
from foto3d.app.runtime import Runtime
from foto3d.libs.config import Settings


@asynccontextmanager
async def running_services(settings: Settings, names: list[str], http: bool = True) -> AsyncIterator[Runtime]:
    """Run the named services in this process, as `foto3d up` would, with HTTP on a free port.

    ``rt.http_url`` is the base URL; ``rt.services`` the started instances.
    """
    assert settings.nats_urls
    rt = Runtime(settings, settings.nats_urls, [by_name(n) for n in names], http=http, http_port=0)
    try:
        await rt.start()
        yield rt
    finally:
        await rt.stop()
