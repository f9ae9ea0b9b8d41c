"""`foto3d up` runs with authorization on: its keys in the data folder, owner-only and never
printed; a client without a key is refused; the CLI finds the staff key by itself."""

from __future__ import annotations

import asyncio
import stat
import subprocess
from pathlib import Path

import nats
import pytest

from foto3d.libs.bus.identities import new_seed
from tests.app.uphelpers import FOTO3D, endpoints, running_up, up_env


async def test_up_refuses_a_client_without_a_key_and_the_cli_uses_the_data_folders(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with running_up(data) as proc:
        url = endpoints(data)["nats_url"]
        keys = data / "auth" / "keys"
        assert stat.S_IMODE((data / "auth").stat().st_mode) == 0o700
        assert {p.name for p in keys.iterdir()} >= {"up.nk", "staff.nk", "queue.nk", "gateway.nk"}
        for key in keys.iterdir():
            assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await nats.connect(url, allow_reconnect=False)
        # A key the site never made is refused too.
        (tmp_path / "other.nk").write_bytes(new_seed())
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await nats.connect(url, allow_reconnect=False, nkeys_seed=str(tmp_path / "other.nk"))
        nc = await nats.connect(url, allow_reconnect=False, nkeys_seed=str(keys / "staff.nk"))
        await nc.close()
        # The CLI, found through the data folder, connects with the staff key.
        done = await asyncio.to_thread(
            subprocess.run,
            [*FOTO3D, "jobs"],
            env=up_env(data),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert proc.poll() is None
    # No private key in the server's log or its configuration (public keys only).
    seeds = {k.read_text().strip() for k in keys.iterdir()}
    for text in (
        (data / "nats" / "nats-server.log").read_text(),
        (data / "auth" / "authorization.conf").read_text(),
    ):
        assert not any(seed in text for seed in seeds)
