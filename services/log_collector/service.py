"""The log-collector service: LOGS stream -> sqlite store -> search, live tail, OTLP."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import msgspec
from aiohttp import web

from foto3d.libs.bus.consume import Delivery, PullConsumer
from foto3d.libs.bus.micro import Endpoint, serve
from foto3d.libs.service import Health, NavLink, Service, ServiceContext
from foto3d.libs.tasks import cancel_and_wait
from foto3d.proto.api import BAD_REQUEST, UNAVAILABLE, ServiceError
from foto3d.proto.logs import LOG_QUERY, LogBatch, LogQuery, LogQueryReply
from foto3d.services.log_collector.api import LogHttpApi
from foto3d.services.log_collector.metrics import LogCollectorMetrics
from foto3d.services.log_collector.otlp import OtlpSink
from foto3d.services.log_collector.pages import LogsPage
from foto3d.services.log_collector.retention import Pruner
from foto3d.services.log_collector.settings import SETTINGS, LogCollectorSettings
from foto3d.services.log_collector.store import LogStore, rows_from_batches
from foto3d.services.log_collector.tail import TailHub
from foto3d.services.log_collector.topology import STORE_LOGS

log = logging.getLogger(__name__)

DB_NAME = "logs.db"
# A store error within this many seconds keeps the health "degraded".
ERROR_MEMORY_S = 60.0
LAG_POLL_S = 5.0


@dataclass
class Counts:
    stored: int = 0
    duplicates: int = 0
    truncated: int = 0
    oversized: int = 0
    batches: int = 0
    store_errors: int = 0


class OversizedMessage(ValueError):
    pass


class LogCollector(Service):
    name = "log_collector"
    consumer_specs = (STORE_LOGS,)
    # A record about a failing store would go to the stream it cannot store (libs/logsdk/service_logs).
    ships_own_logs = False
    description = "Stores log batches in sqlite with full-text search; search API and live tail."

    def __init__(self) -> None:
        super().__init__()
        self.config = LogCollectorSettings()
        self.store: LogStore | None = None
        self.hub = TailHub()
        self.sink: OtlpSink | None = None
        self.pruner: Pruner | None = None
        self.consumer: PullConsumer[LogBatch] | None = None
        self.counts = Counts()
        self.last_store_error = ""
        self.last_store_error_at = 0.0
        self.lag: int | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._decoder = msgspec.json.Decoder(LogBatch)
        self._api: LogHttpApi | None = None

    # -- lifecycle ---------------------------------------------------------------

    async def start(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        cfg = self.config = SETTINGS.load(ctx.settings)
        self.store = await LogStore(ctx.data_dir(self.name) / DB_NAME, synchronous=cfg.synchronous).open()
        self._api = LogHttpApi(self.store, self.hub, self.stats)
        store = self.store
        LogCollectorMetrics(ctx.bus, lambda: self.counts, store.file_bytes).install(ctx.metrics)
        if cfg.otlp_endpoint:
            self.sink = OtlpSink(
                cfg.otlp_endpoint,
                headers=dict(cfg.otlp_headers),
                batch=cfg.otlp_batch,
                max_queue=cfg.otlp_max_queue,
                timeout_s=cfg.otlp_timeout_s,
            )
            self.sink.start()
        self.pruner = Pruner(
            self.store,
            retention_days=cfg.retention_days,
            max_db_mb=cfg.max_db_mb,
            interval_s=cfg.prune_interval_s,
            chunk=cfg.prune_chunk,
        )
        self._tasks.append(asyncio.create_task(self.pruner.run(), name="log-pruner"))
        self._tasks.append(asyncio.create_task(self._watch_lag(), name="log-lag"))
        self.consumer = PullConsumer(
            bus=ctx.bus,
            spec=STORE_LOGS,
            decode=self._decode,
            handler=self._store_batches,
            batch=cfg.fetch_batch,
        )
        self.consumer.start()

    async def stop(self) -> None:
        if self.consumer is not None:
            await self.consumer.stop()
            self.consumer = None
        self.hub.close()
        await cancel_and_wait(*self._tasks)
        self._tasks.clear()
        if self.sink is not None:
            await self.sink.stop()
        if self.store is not None:
            await self.store.close()
            self.store = None

    # -- ingest ------------------------------------------------------------------

    def _decode(self, data: bytes, _headers: Mapping[str, str]) -> LogBatch:
        limit = self.config.max_message_bytes
        if len(data) > limit:
            self.counts.oversized += 1
            raise OversizedMessage(f"oversized: {len(data)} bytes, the limit is {limit}")
        batch: LogBatch = self._decoder.decode(data)
        return batch

    async def _store_batches(self, deliveries: list[Delivery[LogBatch]]) -> None:
        """One transaction for the whole fetch; the consumer acks after this returns."""
        assert self.store is not None
        prepared = rows_from_batches([d.event for d in deliveries])
        want_new = self.hub.active or self.sink is not None
        try:
            result = await self.store.insert(prepared.rows, want_new=want_new)
        except Exception as exc:
            self.counts.store_errors += 1
            self.last_store_error = f"{type(exc).__name__}: {exc}"
            self.last_store_error_at = time.time()
            raise
        self.last_store_error = ""  # stored again: the cause (a full disk, a lock) is gone
        c = self.counts
        c.batches += len(deliveries)
        c.stored += result.stored
        c.duplicates += result.duplicates
        c.truncated += prepared.truncated
        if result.new:
            self.hub.publish(result.new)
            if self.sink is not None:
                self.sink.offer(result.new)

    async def _watch_lag(self) -> None:
        """Messages not yet stored (pending + unacknowledged), refreshed every few seconds."""
        while True:
            with contextlib.suppress(Exception):
                info = await self.context.bus.js.consumer_info(STORE_LOGS.stream, STORE_LOGS.durable)
                self.lag = int(info.num_pending or 0) + int(info.num_ack_pending or 0)
            await asyncio.sleep(LAG_POLL_S)

    # -- queries -----------------------------------------------------------------

    async def query(self, q: LogQuery) -> LogQueryReply:
        """One page, no larger than the server carries: a reply over its max payload would be lost."""
        if self.store is None:
            raise ServiceError(UNAVAILABLE, "log store is not open")
        try:
            return await self.store.query(q, max_bytes=self.context.bus.nc.max_payload)
        except ValueError as exc:  # an unreadable paging cursor
            raise ServiceError(BAD_REQUEST, str(exc)) from None

    # -- what the runtime asks ---------------------------------------------------

    def stats(self) -> dict[str, Any]:
        consumer = self.consumer.stats if self.consumer else None
        malformed = (consumer.malformed - self.counts.oversized) if consumer else 0
        out: dict[str, Any] = {
            **asdict(self.counts),
            "malformed": max(malformed, 0),
            "handler_errors": consumer.handler_errors if consumer else 0,
            "last_store_error": self.last_store_error,
            "db_path": str(self.store.path) if self.store else "",
            "db_bytes": self.store.file_bytes() if self.store else 0,
            "last_id": self.store.last_id if self.store else 0,
            "consumer_lag": self.lag,
            "live_clients": len(self.hub.subscribers),
            "retention_days": self.config.retention_days,
            "max_db_mb": self.config.max_db_mb,
        }
        if self.pruner is not None:
            out["pruned_by_age"] = self.pruner.stats.deleted_by_age
            out["pruned_by_size"] = self.pruner.stats.deleted_by_size
        if self.sink is not None:
            out["otlp"] = {"endpoint": self.sink.url, "pending": self.sink.pending, **asdict(self.sink.stats)}
        return out

    def health(self) -> Health:
        if self.store is None:
            return Health("starting" if self.ctx is None else "down", "log store is not open")
        problems = []
        if self.last_store_error and time.time() - self.last_store_error_at < ERROR_MEMORY_S:
            problems.append(f"store error: {self.last_store_error}")
        if self.sink is not None and self.sink.stats.failing:
            problems.append(f"OTLP sink failing: {self.sink.stats.last_error}")
        if self.pruner is not None and self.pruner.stats.last_error:
            problems.append(f"pruning failed: {self.pruner.stats.last_error}")
        detail = "; ".join(problems) or f"{self.counts.stored} records stored"
        return Health("degraded" if problems else "ok", detail, self.stats())

    def endpoints(self) -> list[Endpoint]:
        return [serve(LOG_QUERY, self.query)]

    def routes(self) -> list[web.AbstractRouteDef]:
        api = self._api.routes() if self._api else []
        return [*api, *LogsPage().routes()]

    def nav(self) -> list[NavLink]:
        return [NavLink("Logs", "/logs", 20)]

    def banner(self) -> list[str]:
        lines = [f"logs are stored in {self.store.path if self.store else '?'}"]
        if self.sink is not None:
            lines.append(f"logs are also forwarded to {self.sink.url} (OTLP/HTTP)")
        return lines
