"""/metrics: real scrapes of a running system, parsed with prometheus-client's own parser,
checked against real activity (a submitted job, shipped logs, customer requests, a trainer)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import msgspec
import nats.errors
import pytest
from prometheus_client.parser import text_string_to_metric_families

from foto3d.app.runtime import Runtime
from foto3d.libs.bus.connection import Bus
from foto3d.libs.config import Settings
from foto3d.libs.heartbeat import HeartbeatSender
from foto3d.libs.logsdk.shipper import LogShipper
from foto3d.proto.jobs import SUBMIT, SubmitReply, SubmitRequest
from foto3d.services.token_gateway.service import TokenGateway
from testkit.running import running_services
from testkit.signin import staff_cookie
from testkit.waiting import eventually
from tests.token_gateway.helpers import Gateway

TOKEN = "scrape-secret-123"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(rt: Runtime, token: str = TOKEN) -> Samples:
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as s, s.get(f"{rt.http_url}/metrics", headers=headers) as r:
        assert r.status == 200, await r.text()
        assert r.headers["Content-Type"].startswith("text/plain")
        text = await r.text()
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


@pytest.fixture
async def system(settings: Settings, bus: Bus) -> AsyncIterator[Runtime]:
    settings.raw["metrics"] = {"token": TOKEN}
    settings.raw["token_gateway"] = {"port": 0}
    async with running_services(settings, ["queue", "log_collector", "notifier", "token_gateway"]) as rt:
        yield rt


async def test_metrics_refuse_strangers_and_admit_the_token_or_staff(
    system: Runtime, settings: Settings
) -> None:
    url = f"{system.http_url}/metrics"
    async with aiohttp.ClientSession() as s:
        async with s.get(url) as r:
            assert r.status == 401
            assert "Bearer" in r.headers["WWW-Authenticate"]
        async with s.get(url, headers={"Authorization": "Bearer wrong"}) as r:
            assert r.status == 401
        async with s.get(url, headers={"Authorization": f"Bearer {TOKEN}"}) as r:
            assert r.status == 200
    async with aiohttp.ClientSession(cookies=await staff_cookie(settings)) as s, s.get(url) as r:
        assert r.status == 200
        assert "f3d_queue_depth" in await r.text()


async def test_without_a_token_only_staff_may_scrape(settings: Settings, bus: Bus) -> None:
    async with running_services(settings, ["queue"]) as rt, aiohttp.ClientSession() as s:
        # An empty token must not match an empty bearer.
        for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer"}):
            async with s.get(f"{rt.http_url}/metrics", headers=headers) as r:
                assert r.status == 401


async def submit(bus: Bus, req: SubmitRequest) -> SubmitReply:
    async def attempt() -> SubmitReply | None:
        try:
            return await bus.call(SUBMIT, req, timeout=10)
        except nats.errors.NoRespondersError:
            return None  # endpoints not routable yet, right after start

    reply: SubmitReply = await eventually(attempt, "the queue's submit endpoint", timeout=5)
    return reply


async def test_queue_depth_follows_a_submitted_job(system: Runtime, bus: Bus, tmp_path: Path) -> None:
    before = await scrape(system)
    assert value(before, "f3d_queue_depth", priority="normal") == 0
    assert value(before, "f3d_queue_jobs", state="queued") == 0
    dataset = tmp_path / "datasets" / "acme-chair-001"
    (dataset / "images").mkdir(parents=True)
    for i in range(3):
        (dataset / "images" / f"frame_{i:05d}.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    req = msgspec.convert({"object_id": "acme-chair-001", "dataset": str(dataset)}, SubmitRequest)
    await submit(bus, req)

    async def queued() -> bool:
        s = await scrape(system)
        return (
            value(s, "f3d_queue_depth", priority="normal") == 1
            and value(s, "f3d_queue_jobs", state="queued") == 1
        )

    await eventually(queued, timeout=30, interval=0.25)
    s = await scrape(system)
    assert value(s, "f3d_queue_depth", priority="vip") == 0
    age = value(s, "f3d_queue_oldest_age_seconds", priority="normal")
    assert age is not None and age >= 0


async def test_ingested_logs_raise_the_counter_and_errors_open_alerts(
    system: Runtime, settings: Settings, tmp_path: Path
) -> None:
    before = await scrape(system)
    start = value(before, "f3d_logs_ingested_records_total") or 0.0
    assert value(before, "f3d_logs_collector_lag_messages") is not None
    assert value(before, "f3d_mails", state="pending") == 0
    assert settings.nats_urls
    shipper = LogShipper(
        "script", "metrics-test", nats_urls=settings.nats_urls, spool_dir=tmp_path / "spool", heartbeat=False
    )
    try:
        for i in range(50):
            shipper.emit(20, f"metrics record {i}", logger="test")
        shipper.emit(40, "the scanner caught fire", logger="test")
        assert await asyncio.to_thread(shipper.flush, 30)
    finally:
        await asyncio.to_thread(shipper.close, 5)

    async def counted() -> bool:
        s = await scrape(system)
        grown = (value(s, "f3d_logs_ingested_records_total") or 0) - start >= 51
        alerts = sum(v for (n, _), v in s.items() if n == "f3d_alerts_open")
        return grown and alerts >= 1

    await eventually(counted, timeout=30, interval=0.25)


async def test_gateway_counts_requests_refusals_and_bytes_by_customer(system: Runtime, bus: Bus) -> None:
    gw = next(s for s in system.services if isinstance(s, TokenGateway))
    assert gw.listener is not None
    helper = Gateway(rt=system, bus=bus, published=Path(gw.context.settings.data_dir) / "published")
    token = await helper.issue("acme")
    async with aiohttp.ClientSession() as s:
        async with s.get(
            f"{gw.listener.url}/v1/models/acme-lamp-001", headers={"Authorization": "Bearer nope"}
        ):
            pass
        async with s.get(
            f"{gw.listener.url}/v1/models/acme-lamp-404", headers={"Authorization": f"Bearer {token}"}
        ) as r:
            assert r.status == 404
    samples = await scrape(system)
    assert value(samples, "f3d_gateway_requests_total", customer="acme", code="404") == 1
    assert value(samples, "f3d_gateway_request_seconds_count", customer="acme") == 1
    refused = {
        dict(labels)["reason"] for (n, labels), v in samples.items() if n == "f3d_gateway_refusals_total"
    }
    assert refused, samples
    assert value(samples, "f3d_gateway_bans_active") == 0


async def test_trainers_alive_stream_fill_and_free_disk(system: Runtime, bus: Bus) -> None:
    beat = HeartbeatSender(bus, "trainer", "gpu-host-1.trainer-a", host="gpu-host-1", version="1")
    beat.start()
    try:

        async def alive() -> bool:
            return value(await scrape(system), "f3d_trainers", state="alive") == 1

        await eventually(alive, timeout=30, interval=0.25)
    finally:
        await beat.stop(clean=True)
    s = await scrape(system)
    free = [v for (n, _), v in s.items() if n == "f3d_disk_free_bytes"]
    assert free and free[0] > 0
    assert value(s, "f3d_metrics_refresh_failures_total") == 0  # every figure was fresh
    streams = {dict(labels)["stream"] for (n, labels) in s if n == "f3d_stream_bytes"}
    assert "LOGS" in streams or any("LOG" in x for x in streams), streams
