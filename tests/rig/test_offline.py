"""Store-and-forward: a rig offline while it logs and submits; everything arrives once, in order."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from foto3d.libs.bus.connection import connect
from foto3d.libs.storage.base import sha256_file
from foto3d.proto.jobs import Priority
from foto3d.proto.rig import LinkState, RigDataset
from foto3d.rig.client import Reduction, RigClient
from foto3d.rig.datasets import MANIFEST_NAME
from testkit.waiting import eventually
from tests.logsdk.streamread import assert_exactly_once_in_order, read_logs
from tests.rig.helpers import (
    RigProcess,
    make_dataset,
    read_submissions,
    start_hub,
    stream_count,
    wait_status,
    write_rig,
)
from tests.rig.link import CuttableLink

RIG = "rig-07"


def _online(st: object) -> bool:
    return getattr(st, "link", None) == LinkState.ONLINE


@pytest.mark.parametrize("outage", ["hub-stopped", "link-cut"])
async def test_offline_logs_and_submissions_arrive_once_in_order(tmp_path: Path, outage: str) -> None:
    hub = await start_hub(tmp_path / "hub")
    # The rig reaches the hub through TCP links the test can cut (the hub keeps running then):
    # its agent's client connection, and its server's leaf connection.
    link = await CuttableLink(hub.port).start()
    leaf_link = await CuttableLink(hub.leaf_port).start()
    store = tmp_path / "site-store"
    rig_dir = tmp_path / "rig"
    write_rig(
        rig_dir,
        RIG,
        [
            hub.site(
                "local",
                store,
                nats=f"nats://127.0.0.1:{link.port}",
                leaf=f"nats-leaf://127.0.0.1:{leaf_link.port}",
            )
        ],
    )
    rig = RigProcess(rig_dir).start()
    try:
        await wait_status(rig_dir, RIG, _online, 30, lambda: "the rig to come online\n" + rig.log_tail())

        if outage == "hub-stopped":
            hub.stop()
        else:
            link.cut()
            leaf_link.cut()
        await wait_status(rig_dir, RIG, lambda st: st.link == LinkState.OFFLINE, 10, "the rig to go offline")

        client = RigClient(rig_dir)
        shipper = client.shipper(batch_max_records=500)
        for i in range(50_000):
            shipper.emit(20, f"record {i}", object_id="acme-chair-001" if i % 2 else None)
        assert shipper.flush(30), "the rig's own server did not take the records"
        shipper.close()

        submitted = []
        for n in range(5):
            folder = make_dataset(tmp_path / "captures", f"obj{n}", [150_000, 90_000, 3])
            rid = await client.asubmit(
                f"acme-thing-{n:03d}",
                folder,
                reduction=Reduction(keep=0.3, rounds=n % 2),
                priority=Priority.VIP if n == 2 else Priority.NORMAL,
            )
            submitted.append((rid, folder))

        st = await wait_status(
            rig_dir,
            RIG,
            lambda s: s.datasets_waiting == 5 and s.logs_waiting == 100,
            # Counted from the rig's own server, refreshed with the status file: slow under load.
            30,
            "the backlog to show",
        )
        assert st.link == LinkState.OFFLINE
        assert not list(store.glob("**/*.jpg")), "nothing may be uploaded while offline"
        if outage == "link-cut":  # the hub runs on: nothing reached it round the cut links
            probe = await connect([hub.client_url], "test-probe")
            assert await stream_count(probe.js, "LOGS") == 0
            await probe.close()

        if outage == "hub-stopped":
            hub.start()  # same port, same store
        else:
            link.restore()
            leaf_link.restore()
        bus = await connect([hub.client_url], "test-check")
        try:

            async def all_there() -> bool:
                return (
                    await stream_count(bus.js, "SUBMISSIONS") >= 5
                    and await stream_count(bus.js, "LOGS") >= 100
                )

            await eventually(all_there, lambda: "the backlog to reach the hub\n" + rig.log_tail(), 60)
            await wait_status(
                rig_dir,
                RIG,
                lambda s: _online(s) and s.logs_waiting == 0 and s.datasets_waiting == 0,
                10,
                "caught up",
            )
            stored = await read_logs(bus.js)
            assert_exactly_once_in_order(stored.seqs(RIG), 50_000)
            # Sourced with the SDK's own batch ids (and the source's sequence), so a resend is
            # recognised by the hub.
            assert stored.msg_ids == [b.batch_id for b in stored.batches]
            messages = [r.message for _, r in stored.records(RIG)]
            assert messages == [f"record {i}" for i in range(50_000)]

            subs = await read_submissions(bus.js)
            assert [req.request_id for req, _ in subs] == [rid for rid, _ in submitted]
            assert [msg_id for _, msg_id in subs] == [rid for rid, _ in submitted]
            for (req, _), (rid, folder) in zip(subs, submitted, strict=True):
                assert req.options.reduce_keep == 0.3
                assert req.dataset.startswith("file://")
                uploaded = Path(req.dataset.removeprefix("file://"))
                assert uploaded == store.resolve() / "datasets" / RIG / rid
                for src in folder.iterdir():
                    assert sha256_file(uploaded / src.name) == sha256_file(src)
                manifest = msgspec.json.decode((uploaded / MANIFEST_NAME).read_bytes(), type=RigDataset)
                assert manifest.request_id == rid
                assert {f.path: f.sha256 for f in manifest.files} == {
                    p.name: sha256_file(p) for p in folder.iterdir()
                }
            assert subs[2][0].priority == Priority.VIP
            assert [req.options.reduce_iterations for req, _ in subs] == [0, 1, 0, 1, 0]
        finally:
            await bus.close()
    finally:
        rig.stop()
        await link.stop()
        await leaf_link.stop()
        hub.stop()
