"""The services' own WARNING/ERROR records reach the log server, without feedback loops."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from foto3d.libs.bus.connection import Bus
from foto3d.libs.config import Settings
from foto3d.libs.logsdk.service_logs import SOURCE_KIND, not_shipped, service_context
from foto3d.libs.logsdk.shipper import LogShipper
from foto3d.proto import subjects
from foto3d.proto.logs import LOG_QUERY, LogQuery
from foto3d.services.log_collector.service import LogCollector
from testkit.running import running_services
from testkit.waiting import eventually


async def stored(bus: Bus, text: str) -> list[str]:
    reply = await bus.call(LOG_QUERY, LogQuery(source_kind=SOURCE_KIND, text=text, limit=50))
    return [f"{r.source_id} {r.logger} {r.message}" for r in reply.records]


async def test_a_services_warning_reaches_the_log_server_and_quiet_ones_do_not(
    settings: Settings, bus: Bus
) -> None:
    async with running_services(settings, ["log_collector", "queue"]) as rt:
        queue_log = logging.getLogger("foto3d.services.queue.service")
        with service_context("log_collector"):
            queue_log.error("quietmark one: logged while the log collector runs")
        with not_shipped():
            queue_log.error("quietmark two: logged by a consumer of the log stream")
        logging.getLogger("foto3d.logsdk").error("quietmark three: the SDK about itself")
        queue_log.info("quietmark four: below WARNING")
        with service_context("queue"):
            queue_log.warning("shipmark: queue: leader command failed (test)")
        assert rt.service_logs is not None

        async def arrived() -> list[str]:
            return await stored(bus, "shipmark")

        (line,) = await eventually(arrived, timeout=30, interval=0.2)
        assert line.startswith("up.") and "foto3d.services.queue.service" in line
        # One shipper, in order: had the earlier ones been shipped, they would be here by now.
        assert await stored(bus, "quietmark") == []


async def test_a_failing_log_store_does_not_feed_itself(settings: Settings, bus: Bus, tmp_path: Path) -> None:
    async with running_services(settings, ["log_collector"], http=False) as rt:
        (svc,) = rt.services
        assert isinstance(svc, LogCollector) and svc.store is not None and svc.consumer is not None
        # The store breaks (as on a full disk): every insert fails from now on.
        await svc.store.writer.execute(
            "CREATE TRIGGER broken BEFORE INSERT ON logs BEGIN SELECT RAISE(ABORT, 'store is broken'); END"
        )
        await svc.store.writer.commit()
        info = await bus.js.stream_info(subjects.LOGS_STREAM)
        before = int(info.state.messages or 0)
        assert settings.nats_urls
        shipper = LogShipper(
            "script",
            "feeds-nothing",
            nats_urls=settings.nats_urls,
            spool_dir=tmp_path / "spool",
            heartbeat=False,
        )
        try:
            shipper.emit(30, "one batch the broken store cannot take", logger="test")
            assert await asyncio.to_thread(shipper.flush, 30)
        finally:
            await asyncio.to_thread(shipper.close, 5)
        consumer = svc.consumer
        # The collector logs a warning or error for every failed try (seen on stderr) ...
        await eventually(lambda: consumer.stats.handler_errors >= 3, timeout=60, interval=0.2)
        assert rt.service_logs is not None
        await asyncio.to_thread(rt.service_logs.shipper.flush, 10)
        # ... and none of them became a log batch: the stream holds ours and nothing else.
        info = await bus.js.stream_info(subjects.LOGS_STREAM)
        assert int(info.state.messages or 0) == before + 1
