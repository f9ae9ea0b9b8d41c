"""The capture-tool example of docs/rig.md runs as written against a running rig."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

from foto3d.libs.bus.connection import connect
from foto3d.libs.splat.reduce import RECOMMENDED_SH_DEGREE
from foto3d.proto.jobs import Priority
from foto3d.proto.rig import LinkState
from testkit.waiting import eventually
from tests.logsdk.streamread import read_logs
from tests.rig.helpers import (
    RigProcess,
    make_dataset,
    read_submissions,
    start_hub,
    stream_count,
    wait_status,
    write_rig,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "rig.md"
RIG = "rig-ex"


def example_code() -> str:
    text = DOC.read_text()
    after = text.split("Runnable example", 1)[1]
    found = re.search(r"```python\n(.*?)```", after, re.S)
    assert found, "docs/rig.md lost its runnable example"
    return found.group(1)


async def test_docs_example_submits_and_logs(tmp_path: Path) -> None:
    hub = await start_hub(tmp_path / "hub")
    rig_dir = tmp_path / "rig"
    write_rig(rig_dir, RIG, [hub.site("local", tmp_path / "store")])
    rig = RigProcess(rig_dir).start()
    bus = None
    try:
        await wait_status(
            rig_dir, RIG, lambda s: s.link == LinkState.ONLINE, 30, lambda: "online\n" + rig.log_tail()
        )
        folder = make_dataset(tmp_path / "cap", "chair", [20_000, 30_000])
        env = {**os.environ, "FOTO3D_RIG_DIR": str(rig_dir)}
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-c", example_code(), str(folder)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        request_id, link, _waiting = done.stdout.split()
        assert link in ("online", "offline")

        bus = await connect([hub.client_url], "check")
        js = bus.js

        async def arrived() -> bool:
            return await stream_count(js, "SUBMISSIONS") == 1 and await stream_count(js, "LOGS") >= 1

        await eventually(arrived, "the example's submission and logs", 30)
        (req, _), *_ = await read_submissions(js)
        assert req.request_id == request_id and req.object_id == "acme-chair-001"
        assert req.priority == Priority.VIP
        assert (req.options.reduce, req.options.reduce_keep, req.options.reduce_iterations) == (True, 0.3, 0)
        assert req.options.sh_degree == RECOMMENDED_SH_DEGREE  # the docs/splat.md default

        async def both_logged() -> bool:
            return len((await read_logs(js)).records(RIG)) >= 2

        await eventually(both_logged, "both log records", 15)
        messages = [r.message for _, r in (await read_logs(js)).records(RIG)]
        assert messages[:2] == ["captured 2 photos", f"submitted {request_id}"]
    finally:
        if bus is not None:
            await bus.close()
        rig.stop()
        hub.stop()
