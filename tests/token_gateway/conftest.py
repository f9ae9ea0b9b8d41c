from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from foto3d.libs.bus.connection import Bus
from foto3d.libs.config import Settings
from testkit import cors_s3
from testkit.running import running_services
from tests.token_gateway.helpers import Gateway


@pytest.fixture
async def gateway(settings: Settings, bus: Bus) -> AsyncIterator[Gateway]:
    settings.raw["token_gateway"] = {
        "port": 0,
        "test_origins": ["https://staging.example.com"],
        "ban_after_failures": 10,
    }
    async with running_services(settings, ["token_gateway"], http=True) as rt:
        yield Gateway(rt=rt, bus=bus, published=settings.data_dir / "published")


# Rate limits and bans far above what a test sends: tests that send many bad requests on purpose
# (hostile input, the fuzzer) must see each request's own answer, not the ban it earned.
HIGH_LIMITS = {
    "ip_rate": 1e6,
    "ip_burst": 1_000_000,
    "credential_rate": 1e6,
    "credential_burst": 1_000_000,
    "ban_after_failures": 1_000_000,
    "beacon_rate": 1e6,
    "beacon_burst": 1_000_000,
}


@pytest.fixture
async def open_gateway(settings: Settings, bus: Bus) -> AsyncIterator[Gateway]:
    settings.raw["token_gateway"] = {
        "port": 0,
        "test_origins": ["https://staging.example.com"],
        **HIGH_LIMITS,
    }
    async with running_services(settings, ["token_gateway"], http=False) as rt:
        yield Gateway(rt=rt, bus=bus, published=settings.data_dir / "published")


# Beacon sums shared every 0.1 s, a beacon bucket that does not refill within a test, and the
# log server (what the access log kept).
@pytest.fixture
async def beacon_gateway(settings: Settings, bus: Bus) -> AsyncIterator[Gateway]:
    settings.raw["token_gateway"] = {
        "port": 0,
        "beacon_flush_s": 0.1,
        "beacon_rate": 0.001,  # no refill within a test: the burst is all a key gets
        "beacon_burst": 20,
        "trusted_proxies": ["127.0.0.1/32"],  # a test may say, as a balancer, who the client is
    }
    async with running_services(settings, ["log_collector", "token_gateway"], http=False) as rt:
        yield Gateway(rt=rt, bus=bus, published=settings.data_dir / "published")


@pytest.fixture
def cors_s3_server(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[cors_s3.CorsS3Server]:
    """An S3 endpoint that enforces bucket CORS (s3rver); the AWS chain carries its one account."""
    why = cors_s3.missing()
    if why:
        pytest.skip(why)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", cors_s3.ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", cors_s3.SECRET_KEY)
    server = cors_s3.CorsS3Server().start()
    yield server
    server.stop()
