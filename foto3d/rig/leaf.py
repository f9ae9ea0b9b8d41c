"""The rig's own nats-server: JetStream with its own domain, storing in the rig's folder,
joined to every site's hub as a leaf node.

It runs beside the agent (``foto3d rig up``) and holds everything the rig produces
until a site has it. Its streams are declared in ``outbox.py``. One leafnode remote per
site: the link comes up by itself whenever a site is reachable, and the site in use
sources the rig's log stream through it (``sourcing.py``). The rig's own domain keeps
its JetStream API apart from the site's (``$JS.rig-<id>.API``), and the subjects the
rig stores are kept off the link in both directions (``LEAF_DENIED``).

A server left behind by a killed ``rig up`` (its own session outlives the parent) is
stopped before a new one starts (the store lock of ``NatsServer``), so two servers never
share one store.
"""

from __future__ import annotations

import json
from pathlib import Path

from foto3d.libs.bus.identities import write_private
from foto3d.libs.bus.tls import TlsFiles, server_tls_block
from foto3d.libs.nats_server import NatsServer
from foto3d.proto.rig import LEAF_DENIED, rig_domain
from foto3d.rig.settings import RigSettings


def _strings(items: list[str] | tuple[str, ...]) -> str:
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


def leaf_config(settings: RigSettings) -> str:
    sync = "  sync_interval: always\n" if settings.sync_always else ""
    denied = _strings(LEAF_DENIED)
    # The rig's identity on each link (the site checks it against its authorization); the
    # seed sits in this file, which is written owner-only like the key itself.
    nkey = f", nkey: {json.dumps(Path(settings.creds).read_text().strip())}" if settings.creds else ""
    tls = ""
    if settings.tls_ca and settings.tls_cert and settings.tls_key:
        files = TlsFiles(Path(settings.tls_ca), Path(settings.tls_cert), Path(settings.tls_key))
        # The rig checks the site's certificate against the CA and shows its own.
        tls = ", " + server_tls_block(files, verify=False)
    remotes = "".join(
        f"    {{ urls: {_strings(site.leaf_urls())}, deny_imports: {denied}, deny_exports: {denied}{nkey}{tls} }}\n"
        for site in settings.sites
    )
    return (
        f'jetstream {{\n  domain: "{rig_domain(settings.rig_id)}"\n{sync}}}\n'
        # A lost link is retried every second: the rig is back as soon as the site is.
        f"leafnodes {{\n  reconnect: 1\n  remotes: [\n{remotes}  ]\n}}\n"
    )


def write_leaf_config(rig_dir: Path, settings: RigSettings) -> Path:
    """``leaf/nats.conf`` (rewritten from ``rig.toml`` at every start; flags add ports and store)."""
    conf = rig_dir / "leaf" / "nats.conf"
    write_private(conf, leaf_config(settings).encode())
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
