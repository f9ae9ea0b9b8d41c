"""A revoked rig is cut off within seconds, without restarting the site's server; what it
records meanwhile waits in its outbox and arrives once, in order, when it has a new key."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

from foto3d.libs.bus.authconf import write_authorization
from foto3d.libs.bus.connection import connect
from foto3d.libs.bus.leafcut import reload_and_cut
from foto3d.proto.rig import LinkState
from foto3d.rig.client import RigClient
from testkit.identities import session_identities
from testkit.waiting import eventually
from tests.logsdk.streamread import assert_exactly_once_in_order, read_logs
from tests.rig.helpers import RigProcess, start_hub, wait_status, write_rig

RIG = "rig-rv"
RECORDS = 2_000


def rig_links(monitor_url: str) -> tuple[int, int]:
    """The rig's connections at the site: its leaf links and its client connections."""
    with urllib.request.urlopen(f"{monitor_url}/leafz", timeout=2) as r:
        leafs = len(json.load(r).get("leafs") or [])
    with urllib.request.urlopen(f"{monitor_url}/connz?limit=1024", timeout=2) as r:
        conns = json.load(r).get("connections") or []
    return leafs, sum(1 for c in conns if c.get("name") == f"foto3d-rig-{RIG}")


async def test_revoked_rig_is_cut_off_and_its_outbox_waits_for_a_new_key(tmp_path: Path) -> None:
    hub = await start_hub(tmp_path / "hub")
    rig_dir = tmp_path / "rig"
    write_rig(rig_dir, RIG, [hub.site("local", tmp_path / "store")])
    rig = RigProcess(rig_dir).start()
    bus = await connect([hub.client_url], "test-check")
    try:
        await wait_status(
            rig_dir, RIG, lambda s: s.link == LinkState.ONLINE, 30, lambda: "online\n" + rig.log_tail()
        )
        await eventually(lambda: rig_links(hub.monitor_url) == (1, 1), "the rig's two links", timeout=30)
        server_pid = hub.pid

        identities = session_identities()
        identities.revoke(f"rig-{RIG}")
        write_authorization(identities)
        started = time.monotonic()
        await reload_and_cut(hub.reload, hub.client_url, hub.monitor_url, identities.system_key()[0])
        await eventually(lambda: rig_links(hub.monitor_url) == (0, 0), "the revoked rig cut off", timeout=5)
        assert time.monotonic() - started < 5
        assert hub.pid == server_pid and hub.running  # a reload, not a restart

        with RigClient(rig_dir).shipper(batch_max_records=100) as shipper:
            for i in range(RECORDS):
                shipper.emit(20, f"while revoked {i}")
            assert shipper.flush(30), "the rig's own server did not take the records"
        await wait_status(rig_dir, RIG, lambda s: s.logs_waiting == RECORDS // 100, 15, "the outbox waiting")
        assert (await read_logs(bus.js)).seqs(RIG) == []

        # A new key (same file: the rig's settings name it), then the rig restarted to use it.
        identities.add("rig", RIG)
        write_authorization(identities)
        hub.reload()
        rig.stop()
        rig.start()
        await wait_status(
            rig_dir, RIG, lambda s: s.logs_waiting == 0, 60, lambda: "caught up\n" + rig.log_tail()
        )

        async def all_stored() -> bool:
            return len((await read_logs(bus.js)).seqs(RIG)) >= RECORDS

        await eventually(all_stored, "every record at the site", timeout=30)
        assert_exactly_once_in_order((await read_logs(bus.js)).seqs(RIG), RECORDS)
    finally:
        await bus.close()
        rig.stop()
        hub.stop()
