"""An OTLP/HTTP trace receiver for tests: what a collector would get, decoded and kept in memory.

Services export spans with the OpenTelemetry SDK's OTLP/HTTP exporter (protobuf over
``POST /v1/traces``), exactly as they would to a real collector; the test sets
``OTEL_EXPORTER_OTLP_ENDPOINT`` to :attr:`OtlpReceiver.url` and reads the spans back.
"""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from foto3d.libs.tracing.job import ATTEMPT, JOB_ID, STEP
from testkit.servers import free_port
from testkit.waiting import eventually


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    start_ns: int
    end_ns: int
    attributes: dict[str, object]
    error: bool


def _value(v: AnyValue) -> object:
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind in ("string_value", "int_value", "double_value", "bool_value") else str(v)


@dataclass
class OtlpReceiver:
    port: int = field(default_factory=free_port)
    spans: list[ReceivedSpan] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _traces(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        export = ExportTraceServiceRequest.FromString(body)
        for rs in export.resource_spans:
            attrs = {a.key: _value(a.value) for a in rs.resource.attributes}
            service = str(attrs.get("service.name", ""))
            for ss in rs.scope_spans:
                for s in ss.spans:
                    self.spans.append(
                        ReceivedSpan(
                            service=service,
                            name=s.name,
                            trace_id=s.trace_id.hex(),
                            span_id=s.span_id.hex(),
                            parent_id=s.parent_span_id.hex(),
                            start_ns=s.start_time_unix_nano,
                            end_ns=s.end_time_unix_nano,
                            attributes={a.key: _value(a.value) for a in s.attributes},
                            error=s.status.code == 2,
                        )
                    )
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(), content_type="application/x-protobuf"
        )

    def of(self, attribute: str, value: object) -> list[ReceivedSpan]:
        return [s for s in self.spans if s.attributes.get(attribute) == value]

    def steps_of_attempt(self, job_id: str, attempt: int) -> set[object]:
        """The steps of one attempt of a job whose spans have reached the receiver."""
        return {
            s.attributes.get(STEP) for s in self.of(JOB_ID, job_id) if s.attributes.get(ATTEMPT) == attempt
        }

    async def wait_for_steps(
        self, job_id: str, attempt: int, steps: Iterable[str], timeout: float = 30.0
    ) -> None:
        """Wait until every one of ``steps`` of the attempt is here: exporters send in batches."""
        want = set(steps)
        await eventually(
            lambda: self.steps_of_attempt(job_id, attempt) >= want, f"attempt {attempt}'s step spans", timeout
        )

    @asynccontextmanager
    async def running(self) -> AsyncIterator[OtlpReceiver]:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/traces", self._traces)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self.port)
        await site.start()
        try:
            yield self
        finally:
            await runner.cleanup()
