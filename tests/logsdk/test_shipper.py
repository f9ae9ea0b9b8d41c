"""LogShipper and NatsLogHandler against a real nats-server."""

from __future__ import annotations

import asyncio
import logging
import re
import warnings
from pathlib import Path

from foto3d.libs.bus.connection import Bus
from foto3d.libs.logsdk import LogShipper, NatsLogHandler, SpoolFullWarning, attach
from foto3d.libs.nats_server import NatsServer
from foto3d.proto.logs import MAX_BATCH_BYTES, MAX_MESSAGE_CHARS, Level
from testkit.servers import free_port
from tests.logsdk.streamread import assert_exactly_once_in_order, read_logs


def shipper(server: NatsServer, tmp_path: Path, source_id: str = "s1", **kw: object) -> LogShipper:
    return LogShipper("script", source_id, nats_urls=[server.client_url], spool_dir=tmp_path / "spool", **kw)  # type: ignore[arg-type]


async def test_records_arrive_in_batches_exactly_once_in_order(
    bus: Bus, nats_server: NatsServer, tmp_path: Path
) -> None:
    s = shipper(nats_server, tmp_path, job_id="job-7", object_id="chair-01")
    for i in range(5000):
        s.emit(int(Level.INFO), f"line {i}", logger="train")
    s.emit(int(Level.ERROR), "other job", job_id="job-8")
    assert await asyncio.to_thread(s.flush, 10)
    assert await asyncio.to_thread(s.close)
    stored = await read_logs(bus.js)
    seqs = stored.seqs("s1")
    assert_exactly_once_in_order(seqs, 5001)
    assert len(stored.batches) <= 10, "records must travel many per message"
    assert len(set(stored.msg_ids)) == len(stored.batches)
    assert stored.msg_ids == [b.batch_id for b in stored.batches]
    recs = stored.records("s1")
    assert [r.message for _, r in recs[:2]] == ["line 0", "line 1"]
    b0, r0 = recs[0]
    assert (b0.job_id, b0.object_id, b0.source_kind, r0.logger) == ("job-7", "chair-01", "script", "train")
    assert recs[-1][1].job_id == "job-8" and recs[-1][1].level == Level.ERROR


async def test_oversized_text_is_truncated_with_marker_and_batches_stay_small(
    bus: Bus, nats_server: NatsServer, tmp_path: Path
) -> None:
    with shipper(nats_server, tmp_path) as s:
        s.emit(int(Level.INFO), "x" * (MAX_MESSAGE_CHARS + 500), exc="y" * 100_000)
        for _ in range(40):
            s.emit(int(Level.INFO), "z" * 15_000)
    stored = await read_logs(bus.js)
    recs = [r for _, r in stored.records()]
    assert len(recs) == 41
    assert recs[0].message.endswith("…[truncated 500 chars]")
    assert recs[0].exc is not None and "…[truncated" in recs[0].exc
    assert len(stored.batches) >= 2  # 40 x 15 kB does not fit one 512 KiB message
    for b in stored.batches:
        assert len(b.records) >= 1
    info = await bus.js.stream_info("LOGS")
    assert info.state.bytes < len(stored.batches) * (MAX_BATCH_BYTES + 1024)


async def test_seq_survives_restart_for_a_fixed_source(
    bus: Bus, nats_server: NatsServer, tmp_path: Path
) -> None:
    for run in range(2):
        with shipper(nats_server, tmp_path, source_id="rig-7", heartbeat=False) as s:
            for i in range(10):
                s.emit(int(Level.INFO), f"run {run} line {i}")
    stored = await read_logs(bus.js)
    assert_exactly_once_in_order(stored.seqs("rig-7"), 20)


async def test_rig_sends_heartbeats_with_pending_count(
    bus: Bus, nats_server: NatsServer, tmp_path: Path
) -> None:
    import msgspec

    from foto3d.proto.heartbeat import Heartbeat

    got: asyncio.Queue[Heartbeat] = asyncio.Queue()

    async def on_msg(msg: object) -> None:
        await got.put(msgspec.json.decode(msg.data, type=Heartbeat))  # type: ignore[attr-defined]

    await bus.nc.subscribe("f3d.hb.rig.>", cb=on_msg)
    s = LogShipper(
        "rig", "cam-3", nats_urls=[nats_server.client_url], spool_dir=tmp_path / "sp", heartbeat_interval=0.2
    )
    hb = await asyncio.wait_for(got.get(), 10)
    assert (hb.kind, hb.id, hb.interval_s) == ("rig", "cam-3", 0.2)
    await asyncio.to_thread(s.close)
    last = hb
    while not last.stopping:
        last = await asyncio.wait_for(got.get(), 5)
    assert last.pending == 0


async def test_spool_cap_drops_oldest_and_warns(tmp_path: Path) -> None:
    # Nothing listens on this port: every batch goes to the spool.
    url = f"nats://127.0.0.1:{free_port()}"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s = LogShipper(
            "rig",
            "cam-9",
            nats_urls=[url],
            spool_dir=tmp_path / "sp",
            spool_max_bytes=20_000,
            batch_max_records=20,
            heartbeat=False,
        )
        for i in range(2000):
            s.emit(int(Level.INFO), f"record {i:05d} " + "p" * 40)
            if i % 100 == 99:
                # Returns (False) as soon as the records are on disk; the long timeout only
                # matters on a slow machine, where a short one would leave them queued.
                assert not await asyncio.to_thread(s.flush, 60, wait_for_reconnect=False)
        assert not await asyncio.to_thread(s.close, 60)  # not delivered: spooled
    assert any(issubclass(w.category, SpoolFullWarning) for w in caught)
    assert s.stats()["spool_lost_records"] > 0
    import msgspec

    from foto3d.libs.logsdk.spool import Spool
    from foto3d.proto.logs import LogBatch

    sp = Spool(tmp_path / "sp", 20_000)
    entries = sp.entries()
    assert sp.total_bytes() <= 20_000
    batches = [msgspec.json.decode(sp.read(e) or b"", type=LogBatch) for e in entries]
    messages = [r.message for b in batches for r in b.records]
    # The newest records are kept (oldest dropped), and the loss is itself a record.
    assert any(m.startswith("record 01999") for m in messages)
    assert not any(m.startswith("record 00000") for m in messages)
    assert any("dropped" in m and "spool" in m for m in messages)


async def test_close_with_a_backlog_over_the_spool_cap_keeps_the_loss_report(tmp_path: Path) -> None:
    # close() gets no time to flush: the whole backlog (far over the cap) is written at
    # shutdown, and the report of what the cap dropped must be the record that survives.
    url = f"nats://127.0.0.1:{free_port()}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SpoolFullWarning)
        s = LogShipper(
            "rig",
            "cam-9",
            nats_urls=[url],
            spool_dir=tmp_path / "sp",
            spool_max_bytes=20_000,
            batch_max_records=20,
            heartbeat=False,
        )
        for i in range(400):  # 20 batches, 7 fit
            s.emit(int(Level.INFO), f"record {i:05d} " + "p" * 40)
        assert not await asyncio.to_thread(s.close, 0)
        # close() waits a bounded time for the shutdown's disk writes; here they must be done.
        await asyncio.to_thread(s._thread.join, 60)
        assert not s._thread.is_alive()
    lost = s.stats()["spool_lost_records"]
    assert lost > 0
    import msgspec

    from foto3d.libs.logsdk.spool import Spool
    from foto3d.proto.logs import LogBatch

    sp = Spool(tmp_path / "sp", 20_000)
    assert sp.total_bytes() <= 20_000
    batches = [msgspec.json.decode(sp.read(e) or b"", type=LogBatch) for e in sp.entries()]
    records = [r for b in batches for r in b.records]
    report = records[-1]
    assert report.level == Level.ERROR and report.logger == "foto3d.logsdk"  # lost records: mailed
    # It counts the whole backlog's loss (only writing the report itself may drop one more batch).
    reported = re.search(r"\((\d+) in all since this shipper started\)", report.message)
    assert reported is not None and lost - 20 <= int(reported.group(1)) <= lost
    # Every record numbered (from 0: the 400 and the loss reports) is either kept or counted lost.
    assert len(records) + lost == s.stats()["next_seq"]
    assert records[-2].message.startswith("record 00399")
    kept = [int(r.message.split()[1]) for r in records if r.logger != "foto3d.logsdk"]
    assert kept == list(range(400 - len(kept), 400)), "the newest records are kept, in order"


async def test_handler_ships_levels_loggers_and_tracebacks(
    bus: Bus, nats_server: NatsServer, tmp_path: Path
) -> None:
    log = logging.getLogger("tests.logsdk.handler")
    log.propagate = False
    h = attach(
        "handler-test",
        logger=log,
        install_excepthook=False,
        nats_urls=[nats_server.client_url],
        spool_dir=tmp_path / "sp",
    )
    assert isinstance(h, NatsLogHandler)
    log.debug("not shipped: below INFO")
    log.info("loaded %d images", 42)
    log.warning("slow", extra={"job_id": "job-x"})
    try:
        raise ValueError("bad pose")
    except ValueError:
        log.exception("training failed")
    log.removeHandler(h)
    h.close()
    recs = [r for _, r in (await read_logs(bus.js)).records("handler-test")]
    assert [(r.level, r.message) for r in recs] == [
        (Level.INFO, "loaded 42 images"),
        (Level.WARNING, "slow"),
        (Level.ERROR, "training failed"),
    ]
    assert recs[1].job_id == "job-x"
    assert all(r.logger == "tests.logsdk.handler" for r in recs)
    assert recs[2].exc is not None and "Traceback" in recs[2].exc and "ValueError: bad pose" in recs[2].exc
