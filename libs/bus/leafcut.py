"""Close a server's leaf links after a revocation.

A configuration reload closes the client connections of a removed key at once, but
nats-server does not re-check leaf links on reload: a revoked rig's link would stay up
until it next reconnects. So after a revocation every leaf link of the server is closed
through the system account (``$SYS.REQ.SERVER.<id>.KICK``). A rig that still has a valid
key is back within about a second (its leaf remote retries every second, and durable
sourcing resumes where the site stopped); the revoked one is refused.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nats


def _monitor(url: str, path: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/{path}", timeout=5) as r:
        return dict(json.load(r))


async def cut_leaf_links(client_url: str, monitor_url: str, system_key: Path) -> int:
    """Close every leaf link of the server at ``client_url``; returns how many were closed."""
    varz = await asyncio.to_thread(_monitor, monitor_url, "varz")
    leafz = await asyncio.to_thread(_monitor, monitor_url, "leafz")
    ids = [leaf["id"] for leaf in leafz.get("leafs") or []]
    if not ids:
        return 0
    nc = await nats.connect(client_url, nkeys_seed=str(system_key), allow_reconnect=False, name="foto3d-auth")
    try:
        for cid in ids:
            await nc.request(
                f"$SYS.REQ.SERVER.{varz['server_id']}.KICK", json.dumps({"cid": cid}).encode(), timeout=5
            )
    finally:
        await nc.close()
    return len(ids)


async def reload_and_cut(
    reload: Callable[[], None], client_url: str, monitor_url: str, system_key: Path, timeout: float = 5.0
) -> int:
    """Have the server re-read its authorization (``reload``: SIGHUP), wait until it has, then
    close its leaf links, so a revoked rig is off within seconds without a restart."""
    before = (await asyncio.to_thread(_monitor, monitor_url, "varz")).get("config_load_time")
    reload()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (await asyncio.to_thread(_monitor, monitor_url, "varz")).get("config_load_time") == before:
        if loop.time() > deadline:
            raise TimeoutError("the nats-server did not reload its configuration")
        await asyncio.sleep(0.05)
    return await cut_leaf_links(client_url, monitor_url, system_key)
