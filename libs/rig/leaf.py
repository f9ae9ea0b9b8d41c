"""The rig's own nats-server: JetStream with its own domain, storing in the rig's folder.

It runs beside the agent (``foto3d rig up``) and holds everything the rig produces
until a site has it. Its streams are declared in ``outbox.py``.

A server left behind by a killed ``rig up`` (its own session outlives the parent) is
stopped before a new one starts, so two servers never share one store.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from foto3d.libs.nats_server import NatsServer, pid_alive
from foto3d.libs.rig.settings import RigSettings
from foto3d.proto.rig import rig_domain


def leaf_config(settings: RigSettings) -> str:
    # The domain keeps the rig's JetStream API apart ($JS.rig-<id>.API) should the server
    # ever be linked into a hub as a leaf node; forwarding itself goes through the agent.
    sync = "  sync_interval: always\n" if settings.sync_always else ""
    return f'jetstream {{\n  domain: "{rig_domain(settings.rig_id)}"\n{sync}}}\n'


def _stop_leftover(pid_file: Path) -> None:
    try:
        pid = int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return
    if pid == os.getpid() or not pid_alive(pid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def leaf_server(rig_dir: Path, settings: RigSettings) -> NatsServer:
    """A (not yet started) server for this rig on its configured port."""
    return NatsServer(
        store_dir=rig_dir / "leaf",
        port=settings.leaf_port or -1,
        host=settings.leaf_host,
        name=f"rig-{settings.rig_id}",
        config_text=leaf_config(settings),
    )


def start_leaf(rig_dir: Path, settings: RigSettings) -> NatsServer:
    pid_file = rig_dir / "leaf" / "nats-server.pid"
    _stop_leftover(pid_file)
    server = leaf_server(rig_dir, settings).start()
    pid_file.write_text(f"{server.pid}\n")
    return server
