"""Site choice: the rig sends to the first live site, fails over by itself, and comes back."""

from __future__ import annotations

from pathlib import Path

import msgspec

from foto3d.libs.bus.connection import Bus, connect
from foto3d.proto import subjects
from foto3d.proto.heartbeat import Heartbeat
from foto3d.rig.agent import RigAgent
from foto3d.rig.client import RigClient
from foto3d.rig.leaf import start_leaf
from foto3d.rig.sourcing import SOURCE_ACK_PENDING
from testkit.waiting import eventually
from tests.logsdk.streamread import read_logs
from tests.rig.helpers import make_dataset, read_submissions, start_hub, stream_count, write_rig
from tests.rig.link import CuttableLink

RIG = "rig-fo"


async def test_failover_to_the_cloud_and_back(tmp_path: Path) -> None:
    local = await start_hub(tmp_path / "local")
    cloud = await start_hub(tmp_path / "cloud")
    rig_dir = tmp_path / "rig"
    settings = write_rig(
        rig_dir,
        RIG,
        [
            local.site("local", tmp_path / "store-local"),
            cloud.site("cloud", tmp_path / "store-cloud"),
        ],
    )
    leaf = start_leaf(rig_dir, settings)
    agent = RigAgent(rig_dir, settings, leaf_url=leaf.client_url)
    await agent.start()
    client = RigClient(rig_dir, leaf_url=leaf.client_url)
    shipper = client.shipper(batch_max_records=100)
    buses: list[Bus] = []
    try:

        async def on(name: str) -> bool:
            # The site is chosen, and the rig's logs are wired to it (the old site's delivery
            # stopped): what is logged from now on goes there.
            return (
                agent.sites.current is not None
                and agent.sites.current.config.name == name
                and agent.logs is not None
                and agent.logs.attached == name
            )

        async def caught_up() -> bool:
            assert agent.logs is not None
            return await agent.logs.refresh_waiting() == 0

        async def records_at(bus: Bus, n: int) -> bool:
            return sum(len(b.records) for b in (await read_logs(bus.js)).batches) >= n

        await eventually(lambda: on("local"), "the local site", 10)
        for i in range(1000):
            shipper.emit(20, f"a {i}")
        assert shipper.flush(10)
        bus_local = await connect([local.client_url], "check-local")
        buses.append(bus_local)
        await eventually(lambda: records_at(bus_local, 1000), "records at the local site", 10)

        async def heartbeat_at_local() -> bool:
            return await stream_count(bus_local.js, "HEARTBEATS") > 0

        await eventually(heartbeat_at_local, "the rig's heartbeat at the local site", 5)
        # Everything the local site stored is acknowledged to the rig (nothing left to resend).
        await eventually(lambda: caught_up(), "the local site's acknowledgements", 10)
        await bus_local.close()
        buses.remove(bus_local)

        local.stop()  # the local site burns down
        await eventually(lambda: on("cloud"), "failover to the cloud", 10)
        for i in range(1000):
            shipper.emit(20, f"b {i}")
        assert shipper.flush(10)
        rid = await client.asubmit("acme-lamp-001", make_dataset(tmp_path / "cap", "lamp", [5000, 7000]))
        bus_cloud = await connect([cloud.client_url], "check-cloud")
        buses.append(bus_cloud)
        await eventually(lambda: records_at(bus_cloud, 1000), "records at the cloud site", 10)

        async def one_submission() -> bool:
            return await stream_count(bus_cloud.js, "SUBMISSIONS") == 1

        await eventually(one_submission, "the submission at the cloud site", 10)
        subs = await read_submissions(bus_cloud.js)
        assert subs[0][0].request_id == rid
        assert (tmp_path / "store-cloud" / "datasets" / RIG / rid / "img_001.jpg").stat().st_size == 7000

        async def heartbeat_at_cloud() -> bool:
            return await stream_count(bus_cloud.js, "HEARTBEATS") > 0

        await eventually(heartbeat_at_cloud, "the rig's heartbeat at the cloud site", 5)
        hb = await bus_cloud.js.get_last_msg("HEARTBEATS", subjects.heartbeat("rig", RIG))
        beat = msgspec.json.decode(hb.data or b"", type=Heartbeat)
        assert beat.kind == "rig" and beat.id == RIG

        await eventually(lambda: caught_up(), "the cloud site's acknowledgements", 10)
        local.start()  # back: the rig returns to its preferred site once it is steady
        await eventually(lambda: on("local"), "failback to the local site", 15)
        for i in range(1000):
            shipper.emit(20, f"c {i}")
        assert shipper.flush(10)
        bus_local = await connect([local.client_url], "check-local")
        buses.append(bus_local)
        await eventually(lambda: records_at(bus_local, 2000), "records at the local site again", 10)

        at_local = [r.message for _, r in (await read_logs(bus_local.js)).records(RIG)]
        at_cloud = [r.message for _, r in (await read_logs(bus_cloud.js)).records(RIG)]
        assert at_local == [f"a {i}" for i in range(1000)] + [f"c {i}" for i in range(1000)]
        assert at_cloud == [f"b {i}" for i in range(1000)]
    finally:
        shipper.close()
        for b in buses:
            await b.close()
        await agent.stop()
        leaf.stop()
        local.stop()
        cloud.stop()


async def test_a_site_killed_mid_sourcing_doubles_at_most_its_unacknowledged_window(tmp_path: Path) -> None:
    """kill -9 of the local hub while it sources a backlog; the cloud takes the rest.

    Each site holds its part once and in order; together they hold everything; the only
    records at both are the ones the local site stored but had not acknowledged (docs/rig.md).
    """
    local = await start_hub(tmp_path / "local")
    cloud = await start_hub(tmp_path / "cloud")
    local_leaf = await CuttableLink(local.leaf_port).start()
    rig_dir = tmp_path / "rig"
    settings = write_rig(
        rig_dir,
        "rig-kx",
        [
            local.site("local", tmp_path / "s1", leaf=f"nats-leaf://127.0.0.1:{local_leaf.port}"),
            cloud.site("cloud", tmp_path / "s2"),
        ],
    )
    leaf = start_leaf(rig_dir, settings)
    agent = RigAgent(rig_dir, settings, leaf_url=leaf.client_url)
    await agent.start()
    records, per_batch = 20_000, 2
    buses: list[Bus] = []
    try:
        await eventually(
            lambda: agent.logs is not None and agent.logs.attached == "local", "wired to local", 10
        )
        local_leaf.cut()  # a backlog builds up on the rig while the rig stays on the local site
        with RigClient(rig_dir, leaf_url=leaf.client_url).shipper(batch_max_records=per_batch) as shipper:
            for i in range(records):
                shipper.emit(20, f"k {i}")
            assert shipper.flush(60)
        bus_local = await connect([local.client_url], "check-local")
        local_leaf.restore()

        async def half_way() -> bool:
            n = await stream_count(bus_local.js, "LOGS")
            return n >= 500

        await eventually(half_way, "the local site sourcing", 30, interval=0.005)
        local.kill()
        await bus_local.close()
        assert agent.logs is not None
        await eventually(lambda: agent.logs is not None and agent.logs.attached == "cloud", "failover", 15)
        bus_cloud = await connect([cloud.client_url], "check-cloud")
        buses.append(bus_cloud)

        async def rig_empty() -> bool:
            assert agent.logs is not None
            return await agent.logs.refresh_waiting() == 0

        await eventually(rig_empty, "the cloud to take the rest", 60)
        local.start()
        bus_local = await connect([local.client_url], "check-local-2")
        buses.append(bus_local)
        at_local = (await read_logs(bus_local.js)).seqs("rig-kx")
        at_cloud = (await read_logs(bus_cloud.js)).seqs("rig-kx")
        assert len(at_local) < records, "the local site had everything before it was killed"
        for seqs in (at_local, at_cloud):
            assert len(seqs) == len(set(seqs)) and seqs == sorted(seqs), "doubled or out of order in one site"
        assert set(at_local) | set(at_cloud) == set(range(min(at_local), min(at_local) + records))
        both = set(at_local) & set(at_cloud)
        assert len(both) <= SOURCE_ACK_PENDING * per_batch
        # The overlap is the local site's tail: stored there, not yet acknowledged to the rig.
        assert both == set(at_local[len(at_local) - len(both) :])
    finally:
        for b in buses:
            await b.close()
        await agent.stop()
        leaf.stop()
        await local_leaf.stop()
        local.stop()
        cloud.stop()


async def test_a_site_link_comes_back_whatever_broke_its_client(tmp_path: Path) -> None:
    """A probe that fails in a way nobody expected, and a client that closed for good
    (nats-py closes instead of reconnecting after some errors): the site is back by itself."""
    hub = await start_hub(tmp_path / "hub")
    rig_dir = tmp_path / "rig"
    settings = write_rig(rig_dir, "rig-cl", [hub.site("local", tmp_path / "store")])
    leaf = start_leaf(rig_dir, settings)
    agent = RigAgent(rig_dir, settings, leaf_url=leaf.client_url)
    await agent.start()
    link = agent.sites.links[0]
    try:
        await eventually(lambda: agent.sites.current is link, "the site in use", 10)

        assert link.js is not None
        real_account_info = link.js.account_info
        failures = 0

        async def broken_account_info() -> object:
            nonlocal failures
            failures += 1
            raise RuntimeError("an answer nobody expected")

        link.js.account_info = broken_account_info  # type: ignore[method-assign,assignment]
        await eventually(lambda: agent.sites.current is None, "the site to count as dead", 10)
        assert link.error == "an answer nobody expected" and failures > 0
        link.js.account_info = real_account_info  # type: ignore[method-assign]
        await eventually(lambda: agent.sites.current is link, "the site back after odd failures", 10)

        old = link.nc
        assert old is not None
        await old.close()
        await eventually(
            lambda: agent.sites.current is link and link.nc is not old, "the site back on a new client", 15
        )
        assert not any(t.done() for t in agent.sites.tasks()), "a site's probing ended"
        rid = await RigClient(rig_dir, leaf_url=leaf.client_url).asubmit(
            "acme-lamp-002", make_dataset(tmp_path / "cap", "lamp", [5000])
        )
        bus = await connect([hub.client_url], "check")
        try:

            async def submitted() -> bool:
                return await stream_count(bus.js, "SUBMISSIONS") == 1

            await eventually(submitted, "the submission through the new client", 15)
            assert (await read_submissions(bus.js))[0][0].request_id == rid
        finally:
            await bus.close()
    finally:
        await agent.stop()
        leaf.stop()
        hub.stop()
