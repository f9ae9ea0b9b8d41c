"""kill -9 of the rig agent and of the rig's nats-server while forwarding: nothing lost or doubled."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from foto3d.libs.bus.connection import connect
from foto3d.libs.nats_server import pid_alive
from foto3d.libs.storage.base import sha256_file
from foto3d.proto.rig import LinkState
from foto3d.rig.client import RigClient
from testkit.waiting import eventually
from tests.logsdk.streamread import assert_exactly_once_in_order, read_logs
from tests.rig.helpers import (
    RigProcess,
    make_dataset,
    read_submissions,
    running,
    start_hub,
    stream_count,
    wait_status,
    write_rig,
)

RIG = "rig-k9"
RECORDS = 20_000
PER_BATCH = 10  # 2,000 messages: forwarding takes long enough to be cut half-way
UPLOAD_CAP = 6 * 1024 * 1024  # bytes/s: the two 24 MiB datasets take 8 s


async def test_kill_agent_and_leaf_mid_forwarding(tmp_path: Path) -> None:
    hub = await start_hub(tmp_path / "hub")
    store = tmp_path / "site-store"
    rig_dir = tmp_path / "rig"
    # The upload is capped, as on a metered link, so that it is still under way when the test
    # looks after the restart (uncapped, a loaded machine can see both datasets land first).
    write_rig(rig_dir, RIG, [hub.site("local", store)], upload_bytes_per_s=UPLOAD_CAP)
    rig = RigProcess(rig_dir).start()
    bus = None
    try:
        await wait_status(
            rig_dir, RIG, lambda s: s.link == LinkState.ONLINE, 30, lambda: "online\n" + rig.log_tail()
        )
        hub.stop()
        await wait_status(rig_dir, RIG, lambda s: s.link == LinkState.OFFLINE, 10, "offline")

        client = RigClient(rig_dir)
        shipper = client.shipper(batch_max_records=PER_BATCH)
        for i in range(RECORDS):
            shipper.emit(20, f"line {i}")
        assert shipper.flush(60)
        shipper.close()
        folders = [make_dataset(tmp_path / "cap", f"d{n}", [24 * 1024 * 1024, 1000]) for n in range(2)]
        rids = [await client.asubmit(f"acme-box-{n:03d}", f) for n, f in enumerate(folders)]

        hub.start()
        bus = await connect([hub.client_url], "test-check")
        js = bus.js

        async def some_logs_forwarded() -> bool:
            n = await stream_count(js, "LOGS")
            return n >= 100

        await eventually(some_logs_forwarded, "forwarding to start", 30, interval=0.01)
        assert await stream_count(js, "LOGS") < RECORDS // PER_BATCH, "forwarding finished before the kill"
        first_leaf = rig.leaf_pid()
        rig.kill_all()
        rig.start()

        # The pid file names the killed server until the new one has started and rewritten it.
        async def new_leaf_running() -> bool:
            pid = rig.leaf_pid()
            return pid is not None and pid != first_leaf and running(pid)

        await eventually(new_leaf_running, lambda: "the rig's new server\n" + rig.log_tail(), 30)

        def part_sizes() -> dict[Path, int]:
            return {p: p.stat().st_size for p in store.glob("datasets/*/*/*.part")}

        # Second cut: while a dataset upload is under way, the agent alone. Its nats-server
        # lives on; the next `rig up` must stop it rather than start a second one on the store.
        # Under way means moved by the new agent: the killed one may have begun a part already.
        before = part_sizes()

        async def upload_half_way() -> bool:
            return any(size > before.get(p, 0) for p, size in part_sizes().items())

        await eventually(
            upload_half_way, lambda: "an upload under way\n" + rig.log_tail(), 60, interval=0.005
        )
        left_behind = rig.leaf_pid()
        rig.kill_agent()
        assert left_behind is not None
        assert pid_alive(left_behind), (rig_dir / "leaf" / "nats-server.log").read_text()[-3000:]
        rig.start()
        await wait_status(
            rig_dir, RIG, lambda s: s.link == LinkState.ONLINE, 30, lambda: "back\n" + rig.log_tail()
        )
        assert not running(left_behind) and rig.leaf_pid() != left_behind

        async def done() -> bool:
            return await stream_count(js, "SUBMISSIONS") >= 2

        await eventually(done, lambda: "both submissions\n" + rig.log_tail(), 90)
        await wait_status(
            rig_dir, RIG, lambda s: s.logs_waiting == 0 and s.datasets_waiting == 0, 15, "caught up"
        )
        stored = await read_logs(js)
        assert_exactly_once_in_order(stored.seqs(RIG), RECORDS)
        assert len(stored.batches) == RECORDS // PER_BATCH
        subs = await read_submissions(js)
        assert [req.request_id for req, _ in subs] == rids
        for (req, _), folder in zip(subs, folders, strict=True):
            uploaded = Path(req.dataset.removeprefix("file://"))
            for src in folder.iterdir():
                assert sha256_file(uploaded / src.name) == sha256_file(src)
            assert not list(uploaded.glob("*.part"))
    finally:
        if bus is not None:
            await bus.close()
        rig.stop()
        hub.stop()


async def test_rig_up_exits_when_its_server_dies_and_a_restart_delivers_everything(tmp_path: Path) -> None:
    """kill -9 of the rig's server alone: `rig up` exits non-zero (systemd restarts it), nothing lost."""
    hub = await start_hub(tmp_path / "hub")
    rig_dir = tmp_path / "rig"
    write_rig(rig_dir, "rig-k8", [hub.site("local", tmp_path / "s")])
    rig = RigProcess(rig_dir).start()
    bus = None
    try:
        await wait_status(
            rig_dir, "rig-k8", lambda s: s.link == LinkState.ONLINE, 30, lambda: "online\n" + rig.log_tail()
        )
        hub.stop()
        await wait_status(rig_dir, "rig-k8", lambda s: s.link == LinkState.OFFLINE, 10, "offline")
        with RigClient(rig_dir).shipper(batch_max_records=100) as shipper:
            for i in range(5000):
                shipper.emit(20, f"k {i}")
            assert shipper.flush(30)
        leaf = rig.leaf_pid()
        assert leaf is not None
        os.kill(leaf, signal.SIGKILL)
        assert rig.proc is not None
        code = await asyncio.to_thread(rig.proc.wait, 15)
        assert code == 1
        assert "nats-server exited" in rig.log_tail()

        rig.start()
        hub.start()
        bus = await connect([hub.client_url], "check")
        js = bus.js

        async def all_there() -> bool:
            return await stream_count(js, "LOGS") >= 50

        await eventually(all_there, lambda: "the records\n" + rig.log_tail(), 30)
        assert_exactly_once_in_order((await read_logs(js)).seqs("rig-k8"), 5000)
    finally:
        if bus is not None:
            await bus.close()
        rig.stop()
        hub.stop()
