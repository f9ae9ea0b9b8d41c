"""`foto3d status` says how full the data volume and the size-limited streams are."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from foto3d.libs.bus.connection import CREDS_ENV, Bus
from foto3d.libs.nats_server import NatsServer
from testkit.identities import creds_for


async def test_status_reports_disk_and_stream_fill_with_warnings(
    bus: Bus, nats_server: NatsServer, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOTO3D_")}
    env |= {"FOTO3D_NATS_URL": nats_server.client_url, "FOTO3D_DATA": str(data)}
    env[CREDS_ENV] = str(creds_for("staff"))  # a person's key
    cmd = [sys.executable, "-m", "foto3d.cli.main", "status"]
    done = await asyncio.to_thread(
        subprocess.run, [*cmd, "--json"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    storage = json.loads(done.stdout)["storage"]
    assert storage["disk"]["free_bytes"] > 0 and storage["disk"]["path"] == str(data)
    assert {s["name"] for s in storage["streams"]} >= {"LOGS", "DEAD"}
    assert storage["warnings"] == []
    # A threshold no disk can meet: the warning names the volume and the setting's value.
    env["FOTO3D_DISK_WARN_FREE_PCT"] = "100"
    done = await asyncio.to_thread(subprocess.run, cmd, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "storage: data volume" in done.stdout and "LOGS 0% of" in done.stdout
    assert f"WARNING: data volume {data} has" in done.stdout and "threshold of 100%" in done.stdout
