"""A 3-node NATS cluster with JetStream on free ports, and queue instances in subprocesses."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nats.errors

from foto3d.app.topology import assemble
from foto3d.libs.bus.connection import Bus
from foto3d.libs.bus.topology import ProvisionError, provision
from foto3d.libs.nats_server import NatsServer
from testkit.identities import auth_includes
from testkit.servers import free_port


def start_cluster(root: Path, size: int = 3) -> list[NatsServer]:
    cluster_ports = [free_port() for _ in range(size)]
    servers = []
    for i in range(size):
        routes = ", ".join(f"nats-route://127.0.0.1:{p}" for j, p in enumerate(cluster_ports) if j != i)
        conf = f"""
cluster {{
  name: f3d
  listen: 127.0.0.1:{cluster_ports[i]}
  routes: [{routes}]
}}
"""
        servers.append(
            NatsServer(
                store_dir=root / f"n{i + 1}",
                port=free_port(),
                name=f"n{i + 1}",
                config_text=conf,
                includes=auth_includes(),
            )
        )
    for s in servers:
        s.start()
    return servers


async def provision_r3(bus: Bus, timeout: float = 20.0) -> None:
    """Provision with 3 replicas once the cluster has elected its JetStream meta leader."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            await provision(bus.js, assemble(), replicas=3)
            return
        except (TimeoutError, nats.errors.Error, ProvisionError):
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.3)


def connections(server: NatsServer, name: str) -> int:
    with urllib.request.urlopen(f"{server.monitor_url}/connz?limit=1024", timeout=2) as r:
        conns = json.load(r).get("connections") or []
    return sum(1 for c in conns if c.get("name") == name)


def start_queue(urls: list[str], data: Path, log: Path, replicas: int = 3) -> subprocess.Popen[bytes]:
    env = {**os.environ, "FOTO3D_STREAM_REPLICAS": str(replicas)}
    args = [sys.executable, "-m", "foto3d.cli.main", "serve", "queue", "--nats", ",".join(urls)]
    args += ["--data", str(data), "--no-http"]
    return subprocess.Popen(args, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)


READY = b"queue is running"


async def start_queue_ready(
    urls: list[str], data: Path, log: Path, replicas: int = 3, timeout: float = 40.0
) -> subprocess.Popen[bytes]:
    """Start a queue instance and wait until it runs; restart it if it exits (as systemd does).

    On a busy 2-core machine the cluster may answer the first start's provisioning late.
    """
    deadline = time.monotonic() + timeout
    while True:
        seen = log.read_bytes().count(READY) if log.exists() else 0
        proc = start_queue(urls, data, log, replicas)
        while proc.poll() is None:
            if log.exists() and log.read_bytes().count(READY) > seen:
                return proc
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("queue did not start: " + log.read_text(errors="replace")[-2000:])
            await asyncio.sleep(0.1)
        if time.monotonic() > deadline:
            raise RuntimeError("queue keeps exiting: " + log.read_text(errors="replace")[-2000:])
