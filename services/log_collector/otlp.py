"""Optional second sink: forward stored records as OpenTelemetry logs over OTLP/HTTP.

For sites that outgrow one sqlite file (Loki, Elastic, any OTel collector).
The sink never slows storage down: the collector hands it committed records
and moves on; the sink batches them, POSTs protobuf to ``<endpoint>/v1/logs``
and retries with backoff while the backend is down. Memory is bounded: when
the queue is full the oldest waiting records are dropped and counted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

import aiohttp
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from foto3d import __version__
from foto3d.libs.tasks import cancel_and_wait
from foto3d.proto.logs import Level, StoredLog

log = logging.getLogger(__name__)

# Python logging level -> OpenTelemetry SeverityNumber (the spec's mapping table).
_SEVERITY = ((50, 21, "FATAL"), (40, 17, "ERROR"), (30, 13, "WARN"), (20, 9, "INFO"), (10, 5, "DEBUG"))


def severity(level: int) -> tuple[int, str]:
    for floor, number, text in _SEVERITY:
        if level >= floor:
            return number, text
    return 1, "TRACE"


def _str(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


def _int(key: str, value: int) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(int_value=value))


def _record(r: StoredLog) -> LogRecord:
    number, text = severity(r.level)
    attrs = [
        _str("foto3d.source.kind", r.source_kind),
        _str("foto3d.source.id", r.source_id),
        _int("foto3d.seq", r.seq),
    ]
    if r.logger:
        attrs.append(_str("logger.name", r.logger))
    if r.host:
        attrs.append(_str("host.name", r.host))
    if r.job_id:
        attrs.append(_str("foto3d.job.id", r.job_id))
    if r.object_id:
        attrs.append(_str("foto3d.object.id", r.object_id))
    if r.exc:
        attrs.append(_str("exception.stacktrace", r.exc))
    if r.level in Level._value2member_map_:
        attrs.append(_str("foto3d.level", Level(r.level).name))
    ns = int(r.ts * 1e9)
    return LogRecord(
        time_unix_nano=ns,
        observed_time_unix_nano=ns,
        severity_number=number,  # type: ignore[arg-type]
        severity_text=text,
        body=AnyValue(string_value=r.message),
        attributes=attrs,
    )


def encode_request(records: Iterable[StoredLog]) -> bytes:
    """One ResourceLogs per source (service.name = source kind, instance = source id)."""
    by_source: dict[tuple[str, str, str], list[LogRecord]] = {}
    for r in records:
        by_source.setdefault((r.source_kind, r.source_id, r.host), []).append(_record(r))
    scope = InstrumentationScope(name="foto3d.log_collector", version=__version__)
    resource_logs = []
    for (kind, sid, host), recs in by_source.items():
        res_attrs = [_str("service.name", kind), _str("service.instance.id", sid)]
        if host:
            res_attrs.append(_str("host.name", host))
        resource_logs.append(
            ResourceLogs(
                resource=Resource(attributes=res_attrs),
                scope_logs=[ScopeLogs(scope=scope, log_records=recs)],
            )
        )
    body: bytes = ExportLogsServiceRequest(resource_logs=resource_logs).SerializeToString()
    return body


def logs_url(endpoint: str) -> str:
    """Accept a base URL (``http://host:4318``) or the full ``.../v1/logs``."""
    ep = endpoint.rstrip("/")
    return ep if ep.endswith("/v1/logs") else ep + "/v1/logs"


@dataclass
class OtlpStats:
    sent: int = 0
    dropped: int = 0
    failures: int = 0
    last_error: str = ""
    last_success: float = 0.0
    failing: bool = False


@dataclass
class OtlpSink:
    endpoint: str
    headers: dict[str, str] = field(default_factory=dict)
    batch: int = 2000
    max_queue: int = 100_000
    timeout_s: float = 10.0
    linger_s: float = 0.5
    max_backoff_s: float = 30.0
    stats: OtlpStats = field(default_factory=OtlpStats)
    _queue: deque[StoredLog] = field(default_factory=deque)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None
    _stopping: bool = False

    @property
    def url(self) -> str:
        return logs_url(self.endpoint)

    @property
    def pending(self) -> int:
        return len(self._queue)

    def offer(self, records: list[StoredLog]) -> None:
        """Queue committed records; never blocks, drops the oldest when full."""
        self._queue.extend(records)
        over = len(self._queue) - self.max_queue
        if over > 0:
            for _ in range(over):
                self._queue.popleft()
            self.stats.dropped += over
        if len(self._queue) >= self.batch:
            self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="otlp-sink")

    async def stop(self, flush_timeout: float = 3.0) -> None:
        """Try to send what is queued for a moment, then give up (storage has it all)."""
        self._stopping = True
        self._wake.set()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), flush_timeout)
        except TimeoutError:
            await cancel_and_wait(self._task)

    async def _run(self) -> None:
        headers = {"Content-Type": "application/x-protobuf", **self.headers}
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        async with aiohttp.ClientSession(headers=headers, timeout=timeout) as http:
            backoff = 0.5
            while True:
                if not self._queue:
                    if self._stopping:
                        return
                    self._wake.clear()
                    try:
                        await asyncio.wait_for(self._wake.wait(), self.linger_s)
                    except TimeoutError:
                        pass
                    continue
                n = min(self.batch, len(self._queue))
                inflight = [self._queue.popleft() for _ in range(n)]
                body = await asyncio.to_thread(encode_request, inflight)
                while True:
                    error, retry = await self._post(http, body)
                    if error is None:
                        self.stats.sent += len(inflight)
                        self.stats.last_success = time.time()
                        self.stats.failing = False
                        backoff = 0.5
                        break
                    self.stats.failures += 1
                    self.stats.last_error = error
                    if not self.stats.failing:
                        log.warning("OTLP export to %s failing: %s (will retry)", self.url, error)
                    self.stats.failing = True
                    if not retry:
                        # The backend rejected the data itself; resending cannot help.
                        self.stats.dropped += len(inflight)
                        log.warning("OTLP backend rejected %d records: %s", len(inflight), error)
                        break
                    if self._stopping:
                        return
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, self.max_backoff_s)

    async def _post(self, http: aiohttp.ClientSession, body: bytes) -> tuple[str | None, bool]:
        """(error or None, whether a retry may succeed), per the OTLP/HTTP spec."""
        try:
            async with http.post(self.url, data=body) as resp:
                if 200 <= resp.status < 300:
                    await resp.read()
                    return None, False
                text = (await resp.text())[:200]
                retry = resp.status in (408, 429) or resp.status >= 500
                return f"HTTP {resp.status}: {text}", retry
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return f"{type(exc).__name__}: {exc}", True
