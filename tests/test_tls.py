"""Mutual TLS with the site's private CA: the site verifies the rig, the rig verifies the site.

A leaf node (or a client) with a certificate from another CA is refused, and a rig that
does not trust the site's CA does not link up, even with a valid key.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import urllib.request
from pathlib import Path

import nats
import pytest

from foto3d.libs.bus.tls import TlsFiles, client_context, create_ca, issue, server_tls_block
from foto3d.libs.nats_server import NatsServer
from testkit.identities import auth_includes, creds_for
from testkit.servers import free_port
from testkit.waiting import eventually


def leaf_conf(leaf_port: int, seed: str, files: TlsFiles) -> str:
    tls = server_tls_block(files, verify=False)
    remote = f'{{ urls: ["nats-leaf://127.0.0.1:{leaf_port}"], nkey: {json.dumps(seed)}, {tls} }}'
    return f"leafnodes {{ reconnect: 1, remotes: [ {remote} ] }}\n"


async def test_site_and_rig_verify_each_other(tmp_path: Path) -> None:
    create_ca(tmp_path / "ca")
    (tmp_path / "other-ca").mkdir()
    create_ca(tmp_path / "other-ca", "someone else's CA")
    site = issue(tmp_path / "ca", tmp_path / "site", "site", ("127.0.0.1", "localhost"))
    rig = issue(tmp_path / "ca", tmp_path / "rig", "rig-r1")
    other = issue(tmp_path / "other-ca", tmp_path / "other", "rig-r1")
    # A certificate from another CA (the site must refuse it), trusting the site's CA.
    rogue = TlsFiles(ca=site.ca, cert=other.cert, key=other.key)
    # The rig's own certificate, but trusting another CA than the site's (it must refuse the site).
    distrustful = TlsFiles(ca=other.ca, cert=rig.cert, key=rig.key)

    leaf_port = free_port()
    hub = NatsServer(
        store_dir=tmp_path / "hub",
        port=free_port(),
        config_text=f"{server_tls_block(site)}\nleafnodes {{\n  listen: 127.0.0.1:{leaf_port}\n  "
        f"{server_tls_block(site)}\n}}\n",
        includes=auth_includes(),
    ).start()
    seed = creds_for("rig").read_text().strip()
    leaves: list[NatsServer] = []
    try:
        for name, files in (("rogue", rogue), ("distrustful", distrustful), ("rig", rig)):
            leaves.append(
                NatsServer(
                    store_dir=tmp_path / f"leaf-{name}",
                    port=free_port(),
                    config_text=leaf_conf(leaf_port, seed, files),
                ).start()
            )

        def leafs() -> int:
            with urllib.request.urlopen(f"{hub.monitor_url}/leafz", timeout=2) as r:
                return len(json.load(r).get("leafs") or [])

        def failures(name: str) -> int:
            return (
                (tmp_path / f"leaf-{name}" / "nats-server.log")
                .read_text()
                .count("Leafnode connection closed")
            )

        await eventually(lambda: leafs() == 1, "the rig's link", timeout=30)
        # The other two keep failing their handshakes (each try is logged by the leaf).
        await eventually(
            lambda: failures("rogue") >= 2 and failures("distrustful") >= 2, "refusals", timeout=30
        )
        assert leafs() == 1

        # Clients: the site's CA and a certificate of it, or nothing.
        good = await nats.connect(
            hub.client_url.replace("nats://", "tls://"),
            tls=client_context(site.ca, rig.cert, rig.key),
            nkeys_seed=str(creds_for("up")),
            allow_reconnect=False,
        )
        await good.close()
        with pytest.raises((ssl.SSLError, nats.errors.Error, OSError, asyncio.TimeoutError)):
            await nats.connect(
                hub.client_url.replace("nats://", "tls://"),
                tls=client_context(site.ca, other.cert, other.key),
                nkeys_seed=str(creds_for("up")),
                allow_reconnect=False,
                connect_timeout=2,
            )
    finally:
        for leaf in leaves:
            leaf.stop()
        hub.stop()
