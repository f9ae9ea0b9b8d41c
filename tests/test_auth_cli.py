"""`foto3d auth`: keys owner-only and never printed; a revoked rig is cut off within 5 s by a
configuration reload, without a restart."""

from __future__ import annotations

import asyncio
import stat
import subprocess
import sys
import time
from pathlib import Path

import nats
import pytest

from foto3d.libs.nats_server import NatsServer
from testkit.servers import free_port

FOTO3D = [sys.executable, "-m", "foto3d.cli.main"]


def auth(data: Path, *args: str) -> str:
    done = subprocess.run(
        [*FOTO3D, "auth", "--data", str(data), *args], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_revoked_rig_is_cut_off_within_5s_without_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    auth(data, "init")
    out = auth(data, "add", "rig", "r7")
    key = data / "auth" / "keys" / "rig-r7.nk"
    seed = key.read_text().strip()
    assert seed.startswith("SU") and seed not in out
    assert seed not in auth(data, "list")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "auth").stat().st_mode) == 0o700

    server = NatsServer(
        store_dir=tmp_path / "nats", port=free_port(), includes=[data / "auth" / "authorization.conf"]
    ).start()
    try:
        closed = asyncio.Event()

        async def on_closed() -> None:
            closed.set()

        async def on_disconnect() -> None:
            closed.set()

        nc = await nats.connect(
            server.client_url,
            nkeys_seed=str(key),
            allow_reconnect=False,
            closed_cb=on_closed,
            disconnected_cb=on_disconnect,
        )
        await nc.publish("f3d.hb.rig.r7", b"{}")
        await nc.flush()
        pid = server.pid
        auth(data, "revoke", "rig-r7")
        started = time.monotonic()
        server.reload()
        await asyncio.wait_for(closed.wait(), timeout=5)
        assert time.monotonic() - started < 5
        assert server.pid == pid and server.running  # no restart
        key.write_text(seed + "\n")  # even with the old seed in hand: refused
        with pytest.raises(nats.errors.Error):
            await nats.connect(server.client_url, nkeys_seed=str(key), allow_reconnect=False)
        if not nc.is_closed:
            await nc.close()
    finally:
        server.stop()
