"""Crashes mid-work: nothing lost, nothing stored twice."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from foto3d.libs.bus.connection import Bus
from foto3d.libs.config import Settings
from foto3d.libs.logsdk import LogShipper
from foto3d.libs.nats_server import NatsServer
from foto3d.proto import subjects
from foto3d.services.log_collector.service import DB_NAME, LogCollector
from testkit.running import running_services
from testkit.waiting import eventually
from tests.log_collector.helpers import batch


def db_counts(path: Path) -> tuple[int, int]:
    """(rows, distinct messages) read straight from the store file."""
    if not path.exists():
        return 0, 0
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        rows, distinct = con.execute("SELECT count(*), count(DISTINCT message) FROM logs").fetchone()
    except sqlite3.OperationalError:  # the collector is still creating the schema
        return 0, 0
    finally:
        con.close()
    return int(rows), int(distinct)


async def test_nats_server_killed_during_a_20k_burst_stores_every_record_once(
    settings: Settings, nats_server: NatsServer, tmp_path: Path
) -> None:
    total = 20_000
    async with running_services(settings, ["log_collector"], http=False) as rt:
        (svc,) = rt.services
        assert isinstance(svc, LogCollector) and svc.store is not None
        shipper = LogShipper(
            "trainer",
            "burst-1",
            nats_urls=[nats_server.client_url],
            spool_dir=tmp_path / "spool",
            heartbeat=False,
        )
        half_sent = threading.Event()

        def burst() -> None:
            # ~2 s of steady logging, so the kill lands in the middle of it
            for i in range(total):
                shipper.emit(20, f"burst record {i}", logger="bench", job_id="job-burst")
                if i % 1000 == 999:
                    time.sleep(0.1)
                if i == total // 2:
                    half_sent.set()

        emitter = asyncio.create_task(asyncio.to_thread(burst))
        await asyncio.to_thread(half_sent.wait, 30)
        await asyncio.to_thread(nats_server.kill)
        await asyncio.sleep(1.0)  # the server stays dead while records keep coming
        await asyncio.to_thread(nats_server.restart)
        await emitter
        # flush() gives up early while the shipper is still reconnecting (it has
        # spooled everything by then); ask again until JetStream acked it all.
        await eventually(
            lambda: asyncio.to_thread(shipper.flush, 5), "JetStream to ack every record", timeout=60
        )
        assert await asyncio.to_thread(shipper.close, 30), shipper.stats()
        store = svc.store

        async def all_stored() -> bool:
            return await store.count() >= total

        await eventually(all_stored, timeout=60, what=f"{total} records stored")
        rows, distinct = db_counts(store.path)
        assert (rows, distinct) == (total, total)
        assert shipper.stats()["dropped"] == 0


def serve_collector(nats_url: str, data: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "FOTO3D_DATA": str(data)}
    env.pop("FOTO3D_NATS_URL", None)
    return subprocess.Popen(
        [sys.executable, "-m", "foto3d.cli.main", "serve", "log_collector", "--nats", nats_url, "--no-http"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


async def test_collector_killed_mid_burst_and_restarted_loses_and_doubles_nothing(
    settings: Settings, bus: Bus, tmp_path: Path
) -> None:
    per_msg, msgs = 200, 400
    total = per_msg * msgs
    # Small fetches: many transactions, so the kill lands between and inside them.
    (settings.data_dir / "foto3d.toml").write_text("[log_collector]\nfetch_batch = 8\n")
    for k in range(msgs):
        await bus.publish(
            subjects.logs("trainer", "gpu-9"),
            batch(per_msg, start_seq=k * per_msg, source_id="gpu-9", message=f"m{k}-{{i}}"),
        )
    db = settings.data_dir / "log_collector" / DB_NAME
    assert settings.nats_urls
    proc = serve_collector(settings.nats_urls[0], settings.data_dir)
    try:

        def stored_some() -> bool:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
            return db_counts(db)[0] > 0

        await eventually(stored_some, "the collector to store something", 60, interval=0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    at_kill = db_counts(db)[0]
    assert 0 < at_kill < total, "the kill should land mid-burst"
    proc = serve_collector(settings.nats_urls[0], settings.data_dir)
    try:

        def stored_all() -> bool:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
            return db_counts(db)[0] >= total

        await eventually(stored_all, f"all {total} records stored", 60)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert db_counts(db) == (total, total)
