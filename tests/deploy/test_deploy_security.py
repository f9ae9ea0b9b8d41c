"""Every shipped configuration runs with authorization and TLS on: the NATS servers' files
(systemd, compose, k8s) verify certificates on the client, route and leaf node ports and
include the compiled authorization, and nats-server accepts each of them; every client
configuration names the CA, a certificate and a key."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from foto3d.libs.bus.tls import create_ca, issue
from foto3d.libs.nats_server import nats_server_binary
from testkit.identities import auth_includes

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
TLS_ENV = ("FOTO3D_NATS_TLS_CA", "FOTO3D_NATS_TLS_CERT", "FOTO3D_NATS_TLS_KEY")


def _k8s_nats_conf() -> str:
    docs = yaml.safe_load_all((DEPLOY / "k8s" / "nats-server.yaml").read_text())
    (doc,) = [d for d in docs if d["kind"] == "ConfigMap"]
    conf: str = doc["data"]["nats.conf"]
    return conf


SERVER_CONFS = {
    "systemd": lambda: (DEPLOY / "systemd" / "nats.conf").read_text(),
    "compose": lambda: (DEPLOY / "docker" / "nats-auth.conf").read_text(),
    "k8s": _k8s_nats_conf,
}


def block(text: str, name: str) -> str:
    """The body of the top-level block ``name { … }`` (braces balanced)."""
    m = re.search(rf"^\s*{name}\s*\{{", text, re.M)
    assert m, f"no {name} block"
    depth, i = 1, m.end()
    while depth:
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        i += 1
    return text[m.end() : i - 1]


def top_level(text: str) -> str:
    """``text`` without its nested blocks' bodies."""
    out, depth = [], 0
    for ch in re.sub(r"#.*", "", text):
        if ch == "}":
            depth -= 1
        if depth == 0:
            out.append(ch)
        if ch == "{":
            depth += 1
    return "".join(out)


def verifying_tls(text: str) -> bool:
    body = block(text, "tls")
    return (
        all(k in body for k in ("cert_file", "key_file", "ca_file"))
        and re.search(r"verify:\s*true", body) is not None
    )


@pytest.mark.parametrize("where", sorted(SERVER_CONFS))
def test_every_nats_server_config_has_tls_on_every_port_and_authorization(where: str, tmp_path: Path) -> None:
    text = SERVER_CONFS[where]()
    body = re.sub(r"#.*", "", text)
    assert re.search(r'^\s*include\s+"[^"]*authorization\.conf"', body, re.M), "authorization is not included"
    assert "tls {" in top_level(text) and verifying_tls(body), "the client port has no verifying TLS"
    for port in ("cluster", "leafnodes"):
        assert verifying_tls(block(body, port)), f"{port} has no verifying TLS"

    # nats-server itself accepts it, with real certificates and authorization in their place.
    create_ca(tmp_path / "ca")
    files = issue(tmp_path / "ca", tmp_path / "server", "nats", ("127.0.0.1",))
    real = re.sub(r'cert_file:\s*"[^"]+"', f'cert_file: "{files.cert}"', body)
    real = re.sub(r'key_file:\s*"[^"]+"', f'key_file: "{files.key}"', real)
    real = re.sub(r'ca_file:\s*"[^"]+"', f'ca_file: "{files.ca}"', real)
    # (nats-server resolves an include relative to the including file)
    auth = os.path.relpath(auth_includes()[0], tmp_path)
    real = re.sub(r'include\s+"[^"]*authorization\.conf"', f'include "{auth}"', real)
    real = re.sub(r"store_dir:.*", f'store_dir: "{tmp_path / "js"}"', real)
    conf = tmp_path / "nats.conf"
    conf.write_text(real)
    done = subprocess.run(
        [nats_server_binary(), "-c", str(conf), "-t"], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_compose_clients_use_tls_and_their_keys() -> None:
    compose: dict[str, Any] = yaml.safe_load((REPO / "compose.yaml").read_text())
    for name, svc in compose["services"].items():
        if "build" not in svc:  # NATS, S3, the collector
            continue
        env = svc["environment"]
        assert all(env.get(k) for k in TLS_ENV), f"{name} has no TLS settings"
        assert env["FOTO3D_NATS_URL"].startswith("${FOTO3D_NATS_URL:-tls://"), name
        command = " ".join(svc["command"])
        assert "auth --data /data init" in command or "--creds" in command, f"{name} has no key"
    assert "tls issue nats" in " ".join(compose["x-foto3d"]["command"])


def test_k8s_pods_mount_their_key_and_certificate() -> None:
    (config,) = yaml.safe_load_all((DEPLOY / "k8s" / "config.yaml").read_text())
    assert config["data"]["FOTO3D_NATS_URL"].startswith("tls://")
    assert all(config["data"].get(k) for k in TLS_ENV)
    pods = [
        d["spec"]["template"]["spec"]
        for d in yaml.safe_load_all((DEPLOY / "k8s" / "services.yaml").read_text())
        if d and d["kind"] == "Deployment"
    ]
    for job in yaml.safe_load_all((DEPLOY / "k8s" / "trainer-scaledjob.yaml").read_text()):
        pods.append(job["spec"]["jobTargetRef"]["template"]["spec"])
    assert len(pods) >= 8
    for pod in pods:
        (container,) = pod["containers"]
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert "/var/run/foto3d/tls" in mounts and "/var/run/foto3d/keys" in mounts, container["name"]
        assert any(e["name"] == "FOTO3D_NATS_CREDS" for e in container["env"]), container["name"]
    kustom = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    assert "nats-server.yaml" in kustom["resources"]


def test_systemd_clients_use_tls() -> None:
    env = dict(
        line.split("=", 1)
        for line in (DEPLOY / "systemd" / "foto3d.env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert all(env.get(k) for k in TLS_ENV)
    assert all(u.startswith("tls://") for u in env["FOTO3D_NATS_URL"].split(","))
