"""Logs go first: no dataset byte is sent while log batches wait on the rig."""

from __future__ import annotations

from pathlib import Path

from foto3d.libs.bus.connection import connect
from foto3d.proto.rig import RIG_LOGS_STREAM, rig_source_consumer
from foto3d.rig.agent import RigAgent
from foto3d.rig.client import RigClient
from foto3d.rig.leaf import start_leaf
from testkit.servers import free_port
from testkit.waiting import eventually
from tests.rig.helpers import make_dataset, site_without_hub, start_hub, stream_count, write_rig

RIG = "rig-pr"


async def test_log_backlog_is_sent_before_any_upload(tmp_path: Path) -> None:
    port, leaf_port = free_port(), free_port()
    rig_dir = tmp_path / "rig"
    settings = write_rig(
        rig_dir,
        RIG,
        [site_without_hub("local", tmp_path / "store", port=port, leaf_port=leaf_port)],
    )
    leaf = start_leaf(rig_dir, settings)
    agent = RigAgent(rig_dir, settings, leaf_url=leaf.client_url)
    await agent.start()
    client = RigClient(rig_dir, leaf_url=leaf.client_url)
    hub = None
    bus = None
    try:
        # Offline: a dataset first, then a log backlog behind it.
        rid = await client.asubmit("acme-desk-001", make_dataset(tmp_path / "cap", "desk", [9 * 1024 * 1024]))
        with client.shipper(batch_max_records=10) as shipper:
            for i in range(10_000):
                shipper.emit(20, f"r {i}")
            assert shipper.flush(30)

        hub = await start_hub(tmp_path / "hub", port=port, leaf_port=leaf_port)
        bus = await connect([hub.client_url], "check")
        js = bus.js
        assert agent.delivery is not None
        gate = agent.delivery.logs_first
        # (batches not yet sent, the logs declared stuck) when each chunk asked to go
        unsent_at_first_chunk: list[tuple[int, bool]] = []
        leaf_js = agent.leaf.js if agent.leaf else None
        assert leaf_js is not None

        async def observed_gate() -> None:
            await gate()
            # Batches the rig has not yet sent to the site (sent ones may await its ack).
            consumer = await leaf_js.consumer_info(RIG_LOGS_STREAM, rig_source_consumer("local"))
            unsent_at_first_chunk.append((consumer.num_pending, agent.logs.stuck if agent.logs else False))

        agent.delivery.logs_first = observed_gate

        async def submitted() -> bool:
            return await stream_count(js, "SUBMISSIONS") == 1

        def sourcing() -> str:
            logs = agent.logs
            return f"sourcing: stuck={logs.stuck} error={logs.error!r} waiting={logs.waiting}" if logs else ""

        await eventually(submitted, lambda: "the submission; " + sourcing(), 60)
        assert unsent_at_first_chunk, "the upload never asked to go"
        # Uploads go past waiting logs only once the logs are stuck for LINK_GRACE_S (10 s): on a
        # loaded machine the site's new source can take that long to run, and then the rule lets
        # the upload go, as it would on a rig whose link cannot carry the logs.
        unsent, stuck = unsent_at_first_chunk[0]
        assert unsent == 0 or stuck, (
            f"an upload chunk went while {unsent} log batches were waiting and the logs were not stuck; "
            f"{sourcing()}"
        )
        assert await stream_count(js, "LOGS") == 1000
        assert (tmp_path / "store" / "datasets" / RIG / rid / "img_000.jpg").stat().st_size == 9 * 1024 * 1024
    finally:
        if bus is not None:
            await bus.close()
        await agent.stop()
        leaf.stop()
        if hub is not None:
            hub.stop()
