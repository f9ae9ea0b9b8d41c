"""The rig's own nats-server: JetStream with its own domain, storing in the rig's folder.

It runs beside the agent (``foto3d rig up``) and holds everything the rig produces
until a site has it. Its streams are declared in ``outbox.py``.

A server left behind by a killed ``rig up`` (its own session outlives the parent) is
stopped before a new one starts, so two servers never share one store.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

from foto3d.libs.nats_server import NatsServer, NatsServerError, nats_server_binary, pid_alive
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


class LeafServer(NatsServer):
    """A NatsServer whose stderr goes to a file instead of a pipe to ``rig up``.

    The server must outlive a ``kill -9`` of ``rig up`` (the next one stops it); a pipe
    whose reader has died would end it with SIGPIPE at its next write to stderr.
    """

    def start(self, timeout: float = 15.0) -> NatsServer:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        ports_dir = self.store_dir / "ports"
        ports_dir.mkdir(exist_ok=True)
        for old in ports_dir.glob("*.ports"):
            old.unlink()
        conf = self.store_dir / "nats.conf"
        conf.write_text(self.config_text or "")
        log = self.log_file or (self.store_dir / "nats-server.log")
        args = [nats_server_binary(), "-js", "-sd", str(self.store_dir / "jetstream"), "-c", str(conf)]
        args += ["-a", self.host, "-p", str(self.port), "-m", str(self.monitor_port)]
        args += ["--ports_file_dir", str(ports_dir), "-n", self.name, "-l", str(log), *self.extra_args]
        with (self.store_dir / "nats-server.stderr").open("ab") as err:
            self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise NatsServerError(f"nats-server exited with {self.proc.returncode}: {tail}")
            for ports_file in ports_dir.glob("*.ports"):
                try:
                    info = json.loads(ports_file.read_text())
                    self.client_url = info["nats"][0]
                    self.monitor_url = (info.get("monitoring") or [""])[0]
                except (ValueError, KeyError, IndexError):
                    continue  # written but not complete yet
                self.port = int(self.client_url.rsplit(":", 1)[1])
                return self
            time.sleep(0.02)
        self.stop()
        raise NatsServerError(f"nats-server did not start within {timeout:.0f}s")


def leaf_server(rig_dir: Path, settings: RigSettings) -> NatsServer:
    """A (not yet started) server for this rig on its configured port."""
    return LeafServer(
        store_dir=rig_dir / "leaf",
        port=settings.leaf_port,
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
