"""The rig's own nats-server: JetStream with its own domain, storing in the rig's folder.

It runs beside the agent (``foto3d rig up``) and holds everything the rig produces
until a site has it. Its streams are declared in ``outbox.py``.

A server left behind by a killed ``rig up`` (its own session outlives the parent) is
stopped before a new one starts (the store lock of ``NatsServer``), so two servers never
share one store.
"""

from __future__ import annotations

from pathlib import Path

from foto3d.libs.nats_server import NatsServer
from foto3d.libs.rig.settings import RigSettings
from foto3d.proto.rig import rig_domain


def leaf_config(settings: RigSettings) -> str:
    # The domain keeps the rig's JetStream API apart ($JS.rig-<id>.API) should the server
    # ever be linked into a hub as a leaf node; forwarding itself goes through the agent.
    sync = "  sync_interval: always\n" if settings.sync_always else ""
    return f'jetstream {{\n  domain: "{rig_domain(settings.rig_id)}"\n{sync}}}\n'


def write_leaf_config(rig_dir: Path, settings: RigSettings) -> Path:
    """``leaf/nats.conf`` (rewritten from ``rig.toml`` at every start; flags add ports and store)."""
    conf = rig_dir / "leaf" / "nats.conf"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(leaf_config(settings))
    return conf


def leaf_server(rig_dir: Path, settings: RigSettings) -> NatsServer:
    """A (not yet started) server for this rig on its configured port."""
    store = rig_dir / "leaf"
    return NatsServer(
        store_dir=store,
        port=settings.leaf_port,
        host=settings.leaf_host,
        name=f"rig-{settings.rig_id}",
        config_text=leaf_config(settings),
        # The server must outlive a `kill -9` of `rig up` (the next one stops it), so its
        # stderr goes to a file, not to a pipe whose reader may be gone.
        stderr_file=store / "nats-server.stderr",
    )


def start_leaf(rig_dir: Path, settings: RigSettings) -> NatsServer:
    """Start the rig's server; one left behind on the same store is stopped first.

    The server holds the store's lock for as long as it lives and records its pid in
    ``leaf/nats-server.pid`` (see ``NatsServer``), so two never share the store.
    """
    return leaf_server(rig_dir, settings).start()
