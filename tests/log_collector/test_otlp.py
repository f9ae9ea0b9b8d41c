"""The OTLP/HTTP sink against a local receiver that decodes the protobuf."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)

from foto3d.libs.bus.connection import Bus
from foto3d.libs.config import Settings
from foto3d.proto import subjects
from foto3d.services.log_collector.service import LogCollector
from testkit.running import running_services
from testkit.waiting import eventually
from tests.log_collector.helpers import batch


@dataclass
class Receiver:
    url: str = ""
    fail_next: int = 0
    requests: list[ExportLogsServiceRequest] = field(default_factory=list)
    content_types: list[str] = field(default_factory=list)
    got: asyncio.Event = field(default_factory=asyncio.Event)

    def records(self) -> list[tuple[dict[str, str], dict[str, object], object]]:
        """(resource attributes, record attributes, record) for every record received."""
        out = []
        for req in self.requests:
            for rl in req.resource_logs:
                res = {kv.key: kv.value.string_value for kv in rl.resource.attributes}
                for sl in rl.scope_logs:
                    for rec in sl.log_records:
                        attrs: dict[str, object] = {}
                        for kv in rec.attributes:
                            v = kv.value
                            attrs[kv.key] = (
                                v.int_value if v.WhichOneof("value") == "int_value" else v.string_value
                            )
                        out.append((res, attrs, rec))
        return out


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rx = Receiver()

    async def logs(request: web.Request) -> web.Response:
        rx.content_types.append(request.content_type)
        if rx.fail_next:
            rx.fail_next -= 1
            return web.Response(status=503, text="try later")
        req = ExportLogsServiceRequest()
        req.ParseFromString(await request.read())
        rx.requests.append(req)
        rx.got.set()
        return web.Response(
            body=ExportLogsServiceResponse().SerializeToString(), content_type="application/x-protobuf"
        )

    app = web.Application()
    app.router.add_post("/v1/logs", logs)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    rx.url = f"http://127.0.0.1:{port}"
    yield rx
    await runner.cleanup()


async def test_records_are_forwarded_as_otlp_logs_with_attributes(
    settings: Settings, bus: Bus, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FOTO3D_LOG_OTLP_ENDPOINT", receiver.url)
    receiver.fail_next = 1  # the backend is briefly unavailable: retried, nothing lost
    async with running_services(settings, ["log_collector"]) as rt:
        (svc,) = rt.services
        assert isinstance(svc, LogCollector)
        await bus.publish(subjects.logs("trainer", "gpu-1"), batch(3, job_id="job-o", object_id="obj-o"))
        await bus.publish(
            subjects.logs("trainer", "gpu-1"),
            batch(1, start_seq=3, level=40, message="it broke", exc="Traceback: boom", job_id="job-o"),
        )

        async def degraded() -> bool:
            return svc.health().state == "degraded"

        await eventually(degraded, what="health to report the failing sink")
        assert "OTLP" in svc.health().detail

        async def all_forwarded() -> bool:
            return len(receiver.records()) >= 4

        await eventually(all_forwarded, what="4 records at the receiver")
        assert svc.health().state == "ok"
        async with aiohttp.ClientSession() as http, http.get(rt.http_url + "/healthz") as r:
            comp = (await r.json())["components"]["log_collector"]
        assert comp["otlp"]["sent"] == 4 and comp["otlp"]["failures"] >= 1
    assert set(receiver.content_types) == {"application/x-protobuf"}
    recs = sorted(receiver.records(), key=lambda t: t[1]["foto3d.seq"])  # type: ignore[arg-type, return-value]
    assert len(recs) == 4
    res, attrs, rec = recs[0]
    assert res["service.name"] == "trainer" and res["service.instance.id"] == "gpu-1"
    assert attrs["foto3d.source.kind"] == "trainer" and attrs["foto3d.source.id"] == "gpu-1"
    assert attrs["foto3d.job.id"] == "job-o" and attrs["foto3d.object.id"] == "obj-o"
    assert attrs["host.name"] == "host-a" and attrs["foto3d.seq"] == 0
    assert rec.severity_text == "INFO" and rec.severity_number == 9  # type: ignore[attr-defined]
    assert rec.body.string_value == "step 0 loss 0.0"  # type: ignore[attr-defined]
    _, attrs, rec = recs[3]
    assert rec.severity_text == "ERROR" and rec.severity_number == 17  # type: ignore[attr-defined]
    assert attrs["exception.stacktrace"] == "Traceback: boom"
    assert rec.time_unix_nano > 1_600_000_000 * 10**9  # type: ignore[attr-defined]
