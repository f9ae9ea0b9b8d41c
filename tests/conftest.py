"""Shared fixtures: real nats-servers on free ports, connected buses, settings in tmp folders."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from foto3d.app.runtime import Runtime
from foto3d.app.topology import assemble
from foto3d.libs.bus.connection import Bus, connect
from foto3d.libs.bus.topology import provision
from foto3d.libs.config import Settings
from foto3d.libs.nats_server import NatsServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A real nats-server with JetStream on a free port, storing under tmp_path."""
    server = NatsServer(store_dir=tmp_path / "nats", port=free_port()).start()
    yield server
    server.stop()


@pytest.fixture
async def bus(nats_server: NatsServer) -> AsyncIterator[Bus]:
    """A connection to ``nats_server`` with the whole topology provisioned."""
    b = await connect([nats_server.client_url], "test")
    await provision(b.js, assemble())
    yield b
    await b.close()


@pytest.fixture
def settings(tmp_path: Path, nats_server: NatsServer) -> Settings:
    data = tmp_path / "data"
    data.mkdir()
    s = Settings.load(data_dir=data, nats=nats_server.client_url, http_port=0)
    return s


@asynccontextmanager
async def running_services(settings: Settings, names: list[str], http: bool = True) -> AsyncIterator[Runtime]:
    """Run the named services in this process, as `foto3d up` would, with HTTP on a free port.

    ``rt.http_url`` is the base URL; ``rt.services`` the started instances.
    """
    from foto3d.app.registry import by_name

    assert settings.nats_urls
    rt = Runtime(settings, settings.nats_urls, [by_name(n) for n in names], http=http, http_port=0)
    try:
        await rt.start()
        yield rt
    finally:
        await rt.stop()


pytest_plugins = ["tests.browser"]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """With FOTO3D_NO_SKIPS=1 (set by `make test`, which installs every test dependency first),
    a test that skips itself for a missing tool fails instead, so CI cannot pass by not testing."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("FOTO3D_NO_SKIPS") == "1" and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped, but FOTO3D_NO_SKIPS=1 forbids skips here: {reason}"
