"""A hub (real nats-server with the topology) and a rig run as `foto3d rig up` in a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from foto3d.app.topology import assemble
from foto3d.libs.bus.connection import connect
from foto3d.libs.bus.topology import provision
from foto3d.libs.nats_server import NatsServer, pid_alive
from foto3d.proto.jobs import SubmitRequest
from foto3d.proto.rig import RigStatus
from foto3d.rig import settings as rig_settings
from foto3d.rig.settings import RigSettings, SiteSettings
from foto3d.rig.status import read_status
from testkit.identities import add_participant, auth_includes, reload_on_change
from testkit.servers import free_port
from testkit.waiting import eventually

FOTO3D = [sys.executable, "-m", "foto3d.cli.main"]


@dataclass
class Hub(NatsServer):
    """A site's nats-server that accepts rigs as leaf nodes on ``leaf_port`` (kept across restarts)."""

    leaf_port: int = 0

    @property
    def leaf_url(self) -> str:
        return f"nats-leaf://127.0.0.1:{self.leaf_port}"

    def site(
        self, name: str, store: Path | str, *, nats: str | None = None, leaf: str | None = None
    ) -> SiteSettings:
        """This hub as a rig's site; ``nats``/``leaf`` replace its URLs (a cuttable link in between)."""
        return SiteSettings(
            name=name, nats=nats or self.client_url, store=str(store), leaf=leaf or self.leaf_url
        )


def site_without_hub(
    name: str, store: Path, *, nats: str | None = None, port: int | None = None, leaf_port: int | None = None
) -> SiteSettings:
    """A rig's site whose hub is not running (yet): its URLs on free ports unless given."""
    return SiteSettings(
        name=name,
        nats=nats or f"nats://127.0.0.1:{port or free_port()}",
        leaf=f"nats-leaf://127.0.0.1:{leaf_port or free_port()}",
        store=str(store),
    )


async def start_hub(store: Path, port: int | None = None, leaf_port: int | None = None) -> Hub:
    leaf_port = leaf_port or free_port()
    hub = Hub(
        store_dir=store,
        port=port or free_port(),
        leaf_port=leaf_port,
        # no_advertise: a rig must not learn the hub's own leafnode address and go round the
        # tests' cuttable link in front of it.
        config_text=f"leafnodes {{\n  listen: 127.0.0.1:{leaf_port}\n  no_advertise: true\n}}\n",
        includes=auth_includes(),
    )
    await hub.astart()
    reload_on_change(hub)
    bus = await connect([hub.client_url], "test-hub")
    await provision(bus.js, assemble())
    await bus.close()
    return hub


def write_rig(rig_dir: Path, rig_id: str, sites: list[SiteSettings], **kw: object) -> RigSettings:
    raw = {
        "rig_id": rig_id,
        "sites": [msgspec.to_builtins(s) for s in sites],
        # The rig's own key: its links are checked against the rig role, as on a real site.
        "creds": str(add_participant("rig", rig_id)),
        "leaf_port": free_port(),
        "panel_port": free_port(),
        # Fast health checks so tests see a site go and come back within a second or two.
        "probe_interval_s": 0.2,
        "site_grace_s": 1.0,
        "failback_after_s": 1.0,
        "heartbeat_interval_s": 0.5,
        "publish_timeout_s": 1.0,
        **kw,
    }
    settings = msgspec.convert(raw, RigSettings)
    rig_settings.save(rig_dir, settings)
    return settings


def running(pid: int) -> bool:
    """Alive and not a zombie: an orphaned server that exited stays in the process table
    until init reaps it, which can take a second or two, though it holds nothing any more."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


class RigProcess:
    """`foto3d rig up` as its own process, so it can be killed with SIGKILL."""

    def __init__(self, rig_dir: Path) -> None:
        self.rig_dir = rig_dir
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RigProcess:
        log = (self.rig_dir / "rig-up.log").open("ab")
        self.proc = subprocess.Popen(
            [*FOTO3D, "rig", "up", "--dir", str(self.rig_dir)], stdout=log, stderr=log
        )
        log.close()
        return self

    def leaf_pid(self) -> int | None:
        try:
            return int((self.rig_dir / "leaf" / "nats-server.pid").read_text())
        except (FileNotFoundError, ValueError):
            return None

    def kill_agent(self) -> None:
        """kill -9 of `rig up` alone: its nats-server (own session) lives on."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def kill_all(self) -> None:
        """kill -9 of the agent and of the rig's nats-server."""
        leaf = self.leaf_pid()
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if leaf and pid_alive(leaf):
            os.kill(leaf, signal.SIGKILL)
            deadline = time.monotonic() + 5
            while pid_alive(leaf) and time.monotonic() < deadline:
                time.sleep(0.01)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        leaf = self.leaf_pid()
        if leaf and pid_alive(leaf):  # left behind by a kill -9
            os.kill(leaf, signal.SIGKILL)

    def log_tail(self) -> str:
        path = self.rig_dir / "rig-up.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


async def wait_status(
    rig_dir: Path,
    rig_id: str,
    check: Callable[[RigStatus], bool],
    timeout: float,
    what: str | Callable[[], str],
) -> RigStatus:
    found: list[RigStatus] = []

    async def ok() -> bool:
        st = read_status(rig_dir, rig_id)
        found[:] = [st]
        return check(st)

    def said() -> str:
        text = what() if callable(what) else what
        return f"{text}\nthe rig's last status: {found[0] if found else None!r}"

    await eventually(ok, said, timeout)
    return found[0]


async def stream_count(js: JetStreamContext, stream: str) -> int:
    try:
        return int((await js.stream_info(stream)).state.messages)
    except NotFoundError:
        return 0


async def read_submissions(js: JetStreamContext) -> list[tuple[SubmitRequest, str]]:
    info = await js.stream_info("SUBMISSIONS")
    out: list[tuple[SubmitRequest, str]] = []
    if info.state.messages == 0:
        return out
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        try:
            msg = await js.get_msg("SUBMISSIONS", seq)
        except NotFoundError:
            continue
        req = msgspec.json.decode(msg.data or b"", type=SubmitRequest)
        out.append((req, (msg.headers or {}).get("Nats-Msg-Id", "")))
    return out


def make_dataset(root: Path, name: str, sizes: list[int]) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    for i, size in enumerate(sizes):
        (folder / f"img_{i:03d}.jpg").write_bytes(os.urandom(size))
    return folder
