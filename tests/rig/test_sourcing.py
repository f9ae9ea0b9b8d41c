"""The site's sourcing of rig logs, checked against the nats-server we ship.

What a sourced message keeps, that a batch the site already holds is not stored twice,
that several rigs attaching to one site at once all stay attached, and that the site's
own provisioning keeps the rigs' sources.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from foto3d.app.embedded_nats import EmbeddedNats
from foto3d.app.topology import assemble
from foto3d.libs.bus.connection import Bus, connect
from foto3d.libs.bus.topology import provision, provision_stream
from foto3d.libs.heartbeat import decode_heartbeat
from foto3d.libs.logsdk import LogShipper
from foto3d.proto import subjects
from foto3d.proto.rig import RIG_LOGS_STREAM, LinkState, rig_js_api
from foto3d.rig.agent import RigAgent
from foto3d.rig.client import RigClient
from foto3d.rig.leaf import start_leaf
from foto3d.rig.outbox import provision_outbox
from foto3d.rig.settings import SiteSettings
from foto3d.rig.sourcing import ensure_source
from testkit.waiting import eventually
from tests.logsdk.streamread import assert_exactly_once_in_order, read_logs
from tests.rig.helpers import make_dataset, read_submissions, start_hub, wait_status, write_rig
from tests.rig.link import CuttableLink


async def test_a_sourced_batch_keeps_subject_and_headers_and_is_stored_once(tmp_path: Path) -> None:
    hub = await start_hub(tmp_path / "hub")
    rig_dir = tmp_path / "rig"
    settings = write_rig(rig_dir, "rig-sa", [hub.site("local", tmp_path / "store")])
    leaf = start_leaf(rig_dir, settings)
    agent = RigAgent(rig_dir, settings, leaf_url=leaf.client_url)
    bus: Bus | None = None
    rig_bus: Bus | None = None
    try:
        bus = await connect([hub.client_url], "check")
        rig_bus = await connect([leaf.client_url], "capture-tool")
        subject = subjects.logs("rig", "rig-sa")
        batch = b'{"batch":1}'  # the stream stores bytes; the SDK's batch format does not matter here
        # The same batch reached the hub once already (say, from the SDK's spool of an earlier run).
        await bus.js.publish(subject, batch, headers={"Nats-Msg-Id": "b-1"})
        await agent.start()
        await rig_bus.js.publish(
            subject,
            batch,
            headers={"Nats-Msg-Id": "b-1", "traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"},
        )
        second = b'{"batch":2}'
        await rig_bus.js.publish(
            subject,
            second,
            headers={"Nats-Msg-Id": "b-2", "traceparent": "00-" + "c" * 32 + "-" + "d" * 16 + "-01"},
        )

        async def both_confirmed() -> bool:
            assert agent.logs is not None
            return await agent.logs.refresh_waiting() == 0

        await eventually(both_confirmed, "the rig's batches to be confirmed", 15)
        # The rig's heartbeats are not sourced: they cross the leaf link live, so a core
        # subscriber at the hub (the notifier's way) gets them as if published there.
        beats = await bus.nc.subscribe(subjects.heartbeat("rig", "rig-sa"))
        beat = await beats.next_msg(timeout=5)
        assert decode_heartbeat(beat.data).id == "rig-sa"
        await beats.unsubscribe()
        info = await bus.js.stream_info(subjects.LOGS_STREAM)
        assert info.state.messages == 2, "the batch the hub held already was stored again"
        msg = await bus.js.get_msg(subjects.LOGS_STREAM, info.state.last_seq)
        assert msg.subject == subject
        headers = msg.headers or {}
        assert headers["Nats-Msg-Id"] == "b-2"
        assert headers["traceparent"].startswith("00-" + "c" * 32)
        # The site marks where it came from: the rig's stream and its sequence there (2).
        origin = headers["Nats-Stream-Source"].split()
        assert origin[0].startswith(RIG_LOGS_STREAM + ":") and origin[1] == "2"
    finally:
        await agent.stop()
        for b in (bus, rig_bus):
            if b is not None:
                await b.close()
        leaf.stop()
        hub.stop()


async def test_rigs_attaching_at_once_all_stay_sourced(tmp_path: Path) -> None:
    """Stream configs have no compare-and-set: concurrent writers must not lose a rig."""
    hub = await start_hub(tmp_path / "hub")
    n_rigs, records = 4, 2000
    leaves = []
    agents: list[RigAgent] = []
    bus: Bus | None = None
    try:
        for n in range(n_rigs):
            rig_dir = tmp_path / f"rig{n}"
            settings = write_rig(rig_dir, f"rig-c{n}", [hub.site("local", tmp_path / "store")])
            leaf = start_leaf(rig_dir, settings)
            leaves.append(leaf)
            rig_bus = await connect([leaf.client_url], "setup")
            await provision_outbox(rig_bus.js, settings)  # the outbox exists before any agent runs
            await rig_bus.close()
            with LogShipper(
                "rig",
                f"rig-c{n}",
                nats_urls=[leaf.client_url],
                heartbeat=False,
                batch_max_records=100,
                spool_dir=rig_dir / "spool",
            ) as shipper:
                for i in range(records):
                    shipper.emit(20, f"{n}:{i}")
                assert shipper.flush(20)
            agents.append(RigAgent(rig_dir, settings, leaf_url=leaf.client_url))
        await asyncio.gather(*(a.start() for a in agents))
        bus = await connect([hub.client_url], "check")

        async def all_there() -> bool:
            assert bus is not None
            return (await bus.js.stream_info(subjects.LOGS_STREAM)).state.messages >= n_rigs * records // 100

        await eventually(all_there, "every rig's records", 30)
        stored = await read_logs(bus.js)
        for n in range(n_rigs):
            assert_exactly_once_in_order(stored.seqs(f"rig-c{n}"), records)
        cfg = (await bus.js.stream_info(subjects.LOGS_STREAM)).config
        apis = sorted(s.external.api for s in cfg.sources or [] if s.external is not None)
        assert apis == sorted(rig_js_api(f"rig-c{n}") for n in range(n_rigs))

        # The site's own provisioning (a changed LOGS declaration) keeps the rigs' sources.
        spec = next(s for s in assemble().streams if s.name == subjects.LOGS_STREAM)
        changed = type(spec)(**{**spec.__dict__, "description": spec.description + " (changed)"})
        assert await provision_stream(bus.js, changed) == "updated"
        after = (await bus.js.stream_info(subjects.LOGS_STREAM)).config
        assert len(after.sources or []) == n_rigs
        # Attaching again changes nothing: the check is idempotent.
        assert bus is not None
        assert not await ensure_source(bus.js, "rig-c0", "local")
    finally:
        await asyncio.gather(*(a.stop() for a in agents))
        if bus is not None:
            await bus.close()
        for leaf in leaves:
            leaf.stop()
        hub.stop()


async def test_a_cut_leaf_link_is_reported_and_its_return_delivers(tmp_path: Path) -> None:
    """The site answers the agent but the leaf link is down (a firewall on its port)."""
    hub = await start_hub(tmp_path / "hub")
    leaf_link = await CuttableLink(hub.leaf_port).start()
    rig_dir = tmp_path / "rig"
    settings = write_rig(
        rig_dir,
        "rig-lc",
        [hub.site("local", tmp_path / "store", leaf=f"nats-leaf://127.0.0.1:{leaf_link.port}")],
    )
    leaf = start_leaf(rig_dir, settings)
    agent = RigAgent(rig_dir, settings, leaf_url=leaf.client_url)
    bus: Bus | None = None
    try:
        await agent.start()
        await eventually(lambda: agent.logs is not None and agent.logs.attached == "local", "attached", 10)
        leaf_link.cut()
        with RigClient(rig_dir, leaf_url=leaf.client_url).shipper(batch_max_records=10) as shipper:
            for i in range(100):
                shipper.emit(20, f"r {i}")
            assert shipper.flush(10)
        st = await wait_status(
            rig_dir, "rig-lc", lambda s: any("leaf link" in p.text for p in s.problems), 20, "the problem"
        )
        assert st.link == LinkState.ONLINE and st.logs_waiting == 10
        # Logs go first only while they can go: a dataset is not held behind a dead leaf link.
        client = RigClient(rig_dir, leaf_url=leaf.client_url)
        rid = await client.asubmit("acme-cup-001", make_dataset(tmp_path / "cap", "cup", [5000]))
        bus = await connect([hub.client_url], "check")

        async def submitted() -> bool:
            assert bus is not None
            return (await bus.js.stream_info(subjects.SUBMISSIONS_STREAM)).state.messages == 1

        await eventually(submitted, "the submission past the stuck logs", 20)
        assert (await read_submissions(bus.js))[0][0].request_id == rid
        assert (await bus.js.stream_info(subjects.LOGS_STREAM)).state.messages == 0
        leaf_link.restore()

        async def arrived() -> bool:
            assert bus is not None
            return (await bus.js.stream_info(subjects.LOGS_STREAM)).state.messages >= 10

        await eventually(arrived, "the records after the link's return", 30)
        assert_exactly_once_in_order((await read_logs(bus.js)).seqs("rig-lc"), 100)
    finally:
        await agent.stop()
        if bus is not None:
            await bus.close()
        leaf.stop()
        await leaf_link.stop()
        hub.stop()


async def test_the_embedded_server_of_up_takes_rigs_as_leaf_nodes(tmp_path: Path) -> None:
    """`foto3d up`'s nats-server listens for leaf nodes (a taken port moves, never blocks the start)."""
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    taken = blocker.getsockname()[1]
    embedded = EmbeddedNats(store_dir=tmp_path / "up-nats", leafnode_port=taken)
    await embedded.start()
    rig_dir = tmp_path / "rig"
    leaf = None
    agent = None
    bus: Bus | None = None
    try:
        assert embedded.leafnode_port not in (0, taken)
        bus = await connect([embedded.client_url], "check")
        await provision(bus.js, assemble())
        settings = write_rig(
            rig_dir,
            "rig-up",
            [
                SiteSettings(
                    name="local",
                    nats=embedded.client_url,
                    leaf=f"nats-leaf://127.0.0.1:{embedded.leafnode_port}",
                    store=str(tmp_path / "store"),
                )
            ],
        )
        leaf = start_leaf(rig_dir, settings)
        agent = RigAgent(rig_dir, settings, leaf_url=leaf.client_url)
        await agent.start()
        with RigClient(rig_dir, leaf_url=leaf.client_url).shipper(batch_max_records=10) as shipper:
            for i in range(50):
                shipper.emit(20, f"u {i}")
            assert shipper.flush(10)

        async def arrived() -> bool:
            assert bus is not None
            return (await bus.js.stream_info(subjects.LOGS_STREAM)).state.messages >= 5

        await eventually(arrived, "the rig's records at up's server", 30)
        assert_exactly_once_in_order((await read_logs(bus.js)).seqs("rig-up"), 50)
    finally:
        if agent is not None:
            await agent.stop()
        if bus is not None:
            await bus.close()
        if leaf is not None:
            leaf.stop()
        await embedded.stop()
        blocker.close()


async def test_a_hub_killed_mid_sourcing_holds_every_record_once_when_back(tmp_path: Path) -> None:
    """kill -9 of the site while it sources: what it stored but had not acknowledged comes again
    after its restart and is dropped; nothing is lost."""
    hub = await start_hub(tmp_path / "hub")
    leaf_link = await CuttableLink(hub.leaf_port).start()
    rig_dir = tmp_path / "rig"
    settings = write_rig(
        rig_dir, "rig-hk", [hub.site("local", tmp_path / "s", leaf=f"nats-leaf://127.0.0.1:{leaf_link.port}")]
    )
    leaf = start_leaf(rig_dir, settings)
    agent = RigAgent(rig_dir, settings, leaf_url=leaf.client_url)
    records, per_batch = 20_000, 2
    bus: Bus | None = None
    try:
        await agent.start()
        await eventually(lambda: agent.logs is not None and agent.logs.attached == "local", "attached", 10)
        leaf_link.cut()
        with RigClient(rig_dir, leaf_url=leaf.client_url).shipper(batch_max_records=per_batch) as shipper:
            for i in range(records):
                shipper.emit(20, f"h {i}")
            assert shipper.flush(60)
        probe = await connect([hub.client_url], "probe")
        leaf_link.restore()

        async def half_way() -> bool:
            return (await probe.js.stream_info(subjects.LOGS_STREAM)).state.messages >= 500

        await eventually(half_way, "sourcing under way", 30, interval=0.005)
        hub.kill()
        await probe.close()
        hub.start()
        bus = await connect([hub.client_url], "check")

        async def all_there() -> bool:
            assert bus is not None
            return (await bus.js.stream_info(subjects.LOGS_STREAM)).state.messages >= records // per_batch

        await eventually(all_there, "every batch after the restart", 60)

        async def rig_empty() -> bool:
            assert agent.logs is not None
            return await agent.logs.refresh_waiting() == 0

        await eventually(rig_empty, "every batch acknowledged to the rig", 20)
        assert_exactly_once_in_order((await read_logs(bus.js)).seqs("rig-hk"), records)
    finally:
        await agent.stop()
        if bus is not None:
            await bus.close()
        leaf.stop()
        await leaf_link.stop()
        hub.stop()
