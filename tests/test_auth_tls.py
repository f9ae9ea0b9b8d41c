"""`foto3d auth tls`: the certificates the command makes serve a client, a leaf link and the
cluster's routes; a route with another CA's certificate is refused."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import nats

from foto3d.libs.bus.tls import TlsFiles, client_context, create_ca, issue, server_tls_block
from foto3d.libs.nats_server import NatsServer
from testkit.identities import auth_includes, creds_for
from testkit.servers import free_port
from testkit.waiting import eventually

FOTO3D = [sys.executable, "-m", "foto3d.cli.main"]
LOCAL = ("127.0.0.1", "localhost")


def tls(folder: Path, *args: str) -> TlsFiles:
    done = subprocess.run(
        [*FOTO3D, "auth", "--dir", str(folder), "tls", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    name = args[1] if args[0] == "issue" else "ca"
    out = folder / "tls" / name
    return TlsFiles(ca=out / "ca.pem", cert=out / f"{name}.pem", key=out / f"{name}.key")


def _json(server: NatsServer, page: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{server.monitor_url}/{page}", timeout=2) as r:
        found: dict[str, Any] = json.load(r)
        return found


def routes(server: NatsServer) -> int:
    return int(str(_json(server, "routez").get("num_routes", 0)))


def route_conf(port: int, peers: list[int], files: TlsFiles) -> str:
    urls = ", ".join(f'"nats-route://127.0.0.1:{p}"' for p in peers)
    return f"cluster {{\n  name: f3d\n  listen: 127.0.0.1:{port}\n  routes: [{urls}]\n  {server_tls_block(files)}\n}}\n"


async def test_the_commands_certificates_serve_clients_leaf_links_and_routes(tmp_path: Path) -> None:
    site = tmp_path / "auth"
    tls(site, "init")
    n1, n2, rig = (
        tls(site, "issue", n, *(a for h in LOCAL for a in ("--host", h))) for n in ("n1", "n2", "rig-r1")
    )
    ca_key = site / "tls" / "ca" / "ca.key"
    for private in (ca_key, n1.key, rig.key):
        assert stat.S_IMODE(private.stat().st_mode) == 0o600
        assert stat.S_IMODE(private.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((site / "tls").stat().st_mode) == 0o700
    assert n1.ca.read_bytes() == (site / "tls" / "ca" / "ca.pem").read_bytes()
    # A second `init` keeps the CA (every certificate already issued stays good).
    before = ca_key.read_bytes()
    tls(site, "init")
    assert ca_key.read_bytes() == before

    # Someone else's CA and a certificate of it, to try the cluster with.
    create_ca(tmp_path / "other-ca", "someone else's CA")
    rogue = issue(tmp_path / "other-ca", tmp_path / "rogue", "n3", LOCAL)

    cluster = [free_port() for _ in range(3)]
    leaf_port = free_port()
    servers: list[NatsServer] = []
    try:
        for i, files in enumerate((n1, n2, rogue)):
            conf = route_conf(cluster[i], [p for j, p in enumerate(cluster) if j != i], files)
            if i == 0:  # n1 is also the site the rig links to, and takes TLS clients
                conf += f"{server_tls_block(n1)}\nleafnodes {{\n  listen: 127.0.0.1:{leaf_port}\n  {server_tls_block(n1)}\n}}\n"
            servers.append(
                NatsServer(
                    store_dir=tmp_path / f"n{i + 1}",
                    port=free_port(),
                    name=f"n{i + 1}",
                    config_text=conf,
                    includes=auth_includes(),
                ).start()
            )
        s1, s2, s3 = servers

        # Routes: n1 and n2 each see the other (both directions verify the peer's certificate).
        await eventually(lambda: routes(s1) >= 1 and routes(s2) >= 1, "the TLS route n1<->n2", timeout=30)

        def log(s: NatsServer) -> str:
            return s._log_path.read_text(errors="replace")

        # n3's attempts fail both ways: n1 and n2 reject its certificate, and it theirs.
        await eventually(
            lambda: (
                all("TLS route handshake error" in log(s) for s in (s1, s2))
                and "certificate signed by unknown authority" in log(s3)
            ),
            "n3's refused route handshakes",
            timeout=30,
        )
        assert routes(s3) == 0
        peers = {
            str(r.get("remote_name", r.get("remote_id"))) for r in _json(s1, "routez").get("routes") or []
        }
        assert "n3" not in peers

        # A rig's leaf link with the command's certificate.
        seed = creds_for("rig").read_text().strip()
        remote = f'{{ urls: ["nats-leaf://127.0.0.1:{leaf_port}"], nkey: {json.dumps(seed)}, {server_tls_block(rig, verify=False)} }}'
        servers.append(
            NatsServer(
                store_dir=tmp_path / "rig",
                port=free_port(),
                config_text=f"leafnodes {{ reconnect: 1, remotes: [ {remote} ] }}\n",
            ).start()
        )
        await eventually(
            lambda: len(_json(s1, "leafz").get("leafs") or []) == 1, "the rig's TLS leaf link", timeout=30
        )

        # A client with the command's certificate.
        nc = await nats.connect(
            s1.client_url.replace("nats://", "tls://"),
            tls=client_context(rig.ca, rig.cert, rig.key),
            nkeys_seed=str(creds_for("staff")),
            allow_reconnect=False,
        )
        await nc.flush(timeout=5)
        await nc.close()
    finally:
        for s in servers:
            s.stop()
