"""`foto3d rig up` and `foto3d rig panel`: the rig's long-running processes.

The CLI parses and reports; what runs until a signal lives here, beside the agent and the
panel, as `foto3d/app/up.py` does for a site.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

from foto3d.libs.nats_server import NatsServer
from foto3d.libs.tasks import cancel_and_wait
from foto3d.rig.agent import RigAgent
from foto3d.rig.panel import Panel
from foto3d.rig.settings import RigSettings


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):  # no signal handlers on this platform
            loop.add_signal_handler(sig, stop.set)
    return stop


async def run_agent(rig_dir: Path, settings: RigSettings, leaf: NatsServer) -> str | None:
    """Run the agent beside the rig's started server until SIGTERM/SIGINT (``None``), or until
    the server or a part of the agent dies: then the reason, for the caller to exit non-zero on,
    so that systemd (Restart=always) starts both again from their files."""
    agent = RigAgent(rig_dir, settings, leaf_url=leaf.client_url)
    stop = _stop_on_signals()
    await agent.start()
    print(
        f"rig {settings.rig_id}: agent running (sites: {', '.join(s.name for s in settings.sites)})",
        flush=True,
    )
    proc = leaf.proc
    assert proc is not None
    watched = {
        asyncio.create_task(stop.wait(), name="stop"): None,
        asyncio.create_task(asyncio.to_thread(proc.wait), name="server"): "the rig's nats-server exited",
        asyncio.create_task(agent.wait_broken(), name="agent"): "",
    }
    done, pending = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
    ended = done.pop()
    await agent.stop()
    leaf.stop()  # also ends the thread waiting for the server
    await cancel_and_wait(*pending)
    why = watched[ended]
    if why is None:
        return None
    return why or f"the agent stopped: {ended.result()}"


async def run_panel(rig_dir: Path, settings: RigSettings, host: str, port: int | None) -> None:
    """Serve the operator's panel until SIGTERM/SIGINT. ``OSError`` when it cannot listen."""
    panel = Panel(rig_dir, settings)
    url = await panel.start(host, port)
    print(f"rig panel: {url}", flush=True)
    stop = _stop_on_signals()
    await stop.wait()
    await panel.stop()
