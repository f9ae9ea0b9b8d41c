"""Shared fixtures: real nats-servers on free ports, connected buses, settings in tmp folders,
a real SMTP server and moto's AWS server. The launchers live in ``testkit`` (shared with bench/);
``free_port`` and ``running_services`` stay importable from here."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from foto3d.app.topology import assemble
from foto3d.libs.bus.connection import Bus, connect
from foto3d.libs.bus.topology import provision
from foto3d.libs.config import Settings
from foto3d.libs.nats_server import NatsServer
from testkit.identities import auth_includes, use_session_identities
from testkit.running import running_services
from testkit.servers import MOTO, MotoServer, SmtpServer, free_port

__all__ = ["free_port", "running_services"]

# The trainer's re-fit after reducing runs for minutes by design, and the suite's trainers reduce
# fake exports for other reasons; tests/trainer/test_trainer.py runs a job with it on.
os.environ.setdefault("FOTO3D_TRAINER_REDUCE_REFIT_STEPS", "0")
# The suite's servers run with authorization on; what the tests start finds its key.
use_session_identities()


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A real nats-server with JetStream on a free port, storing under tmp_path, with
    authorization on (the session's identities, ``testkit.identities``)."""
    server = NatsServer(store_dir=tmp_path / "nats", port=free_port(), includes=auth_includes()).start()
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


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """A real SMTP server (aiosmtpd) that can go down and come back on the same port."""
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy credentials through the standard AWS chain (never real ones)."""
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)


@pytest.fixture
def moto(aws_env: None) -> Iterator[MotoServer]:
    """moto's server on a free port, for S3 and EC2."""
    if not MOTO.exists():
        pytest.skip("moto_server is not installed (pip install 'moto[server]')")
    server = MotoServer(free_port()).start()
    yield server
    server.stop()


pytest_plugins = ["tests.browser"]

# Skips FOTO3D_NO_SKIPS=1 still allows, each with its reason: what this machine class cannot run.
ALLOWED_SKIPS = {
    # No container engine (a docker client, no daemon): images and compose cannot start here.
    "tests/e2e/test_containers.py::test_the_services_image_builds_and_starts",
}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """With FOTO3D_NO_SKIPS=1 (set by `make test`, which installs every test dependency first),
    a test that skips itself for a missing tool fails instead, so CI cannot pass by not testing."""
    outcome = yield
    report = outcome.get_result()
    allowed = item.nodeid in ALLOWED_SKIPS
    if (
        report.skipped
        and os.environ.get("FOTO3D_NO_SKIPS") == "1"
        and not hasattr(report, "wasxfail")
        and not allowed
    ):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped, but FOTO3D_NO_SKIPS=1 forbids skips here: {reason}"
