"""Nothing is lost while NATS is down: spool, replay in order, no duplicates.

These tests kill and restart a real nats-server; the first one keeps it down for
30 s, as the issue asks.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from foto3d.libs.bus.connection import Bus
from foto3d.libs.logsdk import LogShipper
from foto3d.libs.logsdk.spool import Spool
from foto3d.libs.nats_server import NatsServer
from foto3d.proto.logs import Level
from tests.logsdk.streamread import assert_exactly_once_in_order, read_logs

OUTAGE_S = 30.0


def make_shipper(server: NatsServer, tmp_path: Path, source_id: str) -> LogShipper:
    return LogShipper(
        "rig", source_id, nats_urls=[server.client_url], spool_dir=tmp_path / "spool", heartbeat=False
    )


@pytest.mark.slow
async def test_server_down_30s_spools_and_replays_everything_once_in_order(
    bus: Bus, nats_server: NatsServer, tmp_path: Path
) -> None:
    s = make_shipper(nats_server, tmp_path, "cam-outage")
    n = 0
    for _ in range(500):
        s.emit(int(Level.INFO), f"before {n}")
        n += 1
    assert await asyncio.to_thread(s.flush, 10)

    nats_server.stop()
    during = 0
    end = time.monotonic() + OUTAGE_S
    while time.monotonic() < end:  # a rig that keeps logging through the outage
        for _ in range(20):
            s.emit(int(Level.INFO), f"during {n}")
            n += 1
            during += 1
        await asyncio.sleep(0.05)
    assert not await asyncio.to_thread(s.flush, 10, wait_for_reconnect=False), (
        "nothing can be acknowledged while the server is down"
    )
    spooled = sum(e.records for e in Spool(tmp_path / "spool", 1 << 40).entries())
    assert spooled >= during, f"spool holds {spooled} records, {during} were logged during the outage"
    assert s.stats()["queued"] == 0

    await asyncio.to_thread(nats_server.restart)
    for _ in range(500):
        s.emit(int(Level.INFO), f"after {n}")
        n += 1
    assert await asyncio.to_thread(s.flush, 30)
    assert await asyncio.to_thread(s.close)
    assert Spool(tmp_path / "spool", 1 << 40).entries() == []

    stored = await read_logs(bus.js)
    recs = [r for _, r in stored.records("cam-outage")]
    assert_exactly_once_in_order([r.seq for r in recs], n)
    assert [int(r.message.split()[-1]) for r in recs] == list(range(n))
    assert s.stats()["replayed_batches"] > 0


async def test_kill9_mid_burst_loses_and_duplicates_nothing(
    bus: Bus, nats_server: NatsServer, tmp_path: Path
) -> None:
    s = make_shipper(nats_server, tmp_path, "cam-kill")
    total = 20_000
    killed = False
    for start in range(0, total, 500):
        for i in range(start, start + 500):
            s.emit(int(Level.INFO), f"burst {i}")
        await asyncio.sleep(0.01)
        if not killed and s.stats()["published_records"] >= 4_000:
            nats_server.kill()
            killed = True
    assert killed, "the burst ended before the server could be killed mid-way"
    await asyncio.to_thread(nats_server.restart)
    assert await asyncio.to_thread(s.flush, 30)
    replayed = s.stats()["replayed_batches"]
    await asyncio.to_thread(s.close)
    assert replayed > 0, "the outage did not make the shipper spool and replay"

    stored = await read_logs(bus.js)
    recs = [r for _, r in stored.records("cam-kill")]
    assert_exactly_once_in_order([r.seq for r in recs], total)
    assert [r.message for r in recs] == [f"burst {i}" for i in range(total)]
