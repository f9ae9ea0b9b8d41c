"""A rig's logs that reach the site after it comes back are read where they were written."""

from __future__ import annotations

import time
from pathlib import Path

from foto3d.libs.bus.connection import connect
from foto3d.libs.config import Settings
from foto3d.proto import subjects
from foto3d.proto.logs import LOG_QUERY, LogQuery
from foto3d.proto.rig import LinkState
from foto3d.rig.client import RigClient
from foto3d.services.log_collector.service import LogCollector
from testkit.running import running_services
from testkit.waiting import eventually
from tests.log_collector.helpers import batch
from tests.rig.helpers import RigProcess, start_hub, wait_status, write_rig
from tests.rig.link import CuttableLink

RIG = "rig-late"


async def test_logs_a_rig_uploads_after_an_outage_are_read_in_time_order(tmp_path: Path) -> None:
    hub = await start_hub(tmp_path / "hub")
    link = await CuttableLink(hub.port).start()
    leaf_link = await CuttableLink(hub.leaf_port).start()
    rig_dir = tmp_path / "rig"
    site = hub.site(
        "local",
        tmp_path / "site-store",
        nats=f"nats://127.0.0.1:{link.port}",
        leaf=f"nats-leaf://127.0.0.1:{leaf_link.port}",
    )
    write_rig(rig_dir, RIG, [site])
    rig = RigProcess(rig_dir).start()
    data = tmp_path / "data"
    data.mkdir()
    settings = Settings.load(data_dir=data, nats=hub.client_url, http_port=0)
    bus = await connect([hub.client_url], "test-late")
    try:
        async with running_services(settings, ["log_collector"], http=False) as rt:
            (svc,) = rt.services
            assert isinstance(svc, LogCollector) and svc.store is not None
            store = svc.store

            async def stored(n: int) -> None:
                async def check() -> bool:
                    return await store.count() == n

                await eventually(check, what=lambda: f"{n} records stored\n" + rig.log_tail(), timeout=60)

            await wait_status(
                rig_dir, RIG, lambda s: s.link == LinkState.ONLINE, 30, lambda: "online\n" + rig.log_tail()
            )
            link.cut()
            leaf_link.cut()
            await wait_status(rig_dir, RIG, lambda s: s.link == LinkState.OFFLINE, 10, "the rig offline")

            # The rig logs while cut off, a minute before the lines below are written.
            now = time.time()
            shipper = RigClient(rig_dir).shipper()
            for i in range(200):
                shipper.emit(20, f"offline {i}", ts=now - 60 + i * 0.01)
            assert shipper.flush(30), "the rig's own server did not take the records"
            shipper.close()
            # Newer lines reach the site from elsewhere meanwhile, and are stored first.
            await bus.publish(subjects.logs("trainer", "gpu-1"), batch(50, ts=now - 30, message="live {i}"))
            await stored(50)

            link.restore()
            leaf_link.restore()
            await stored(250)

            newest = await bus.call(LOG_QUERY, LogQuery(limit=3))
            assert [r.message for r in newest.records] == ["live 49", "live 48", "live 47"]
            from_rig = await bus.call(LOG_QUERY, LogQuery(source_id=RIG, limit=3))
            assert [r.message for r in from_rig.records] == ["offline 199", "offline 198", "offline 197"]
            everything = await bus.call(LOG_QUERY, LogQuery(limit=250))
            assert [r.message for r in everything.records] == [f"live {i}" for i in range(49, -1, -1)] + [
                f"offline {i}" for i in range(199, -1, -1)
            ]
    finally:
        await bus.close()
        rig.stop()
        await link.stop()
        await leaf_link.stop()
        hub.stop()
