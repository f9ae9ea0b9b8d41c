"""The nats-server that `foto3d up` embeds, supervised: same store, same port, restarted at once.

Clients started with ``--nats URL`` (a trainer, a script) only reconnect by themselves if
the server comes back where it was, so the client port is chosen once and remembered in
the data folder (4222 when free, the first time), and a server that dies is started
again on that port and store within about a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from foto3d.libs.bus.authconf import write_authorization
from foto3d.libs.bus.identities import IdentityStore
from foto3d.libs.bus.leafcut import reload_and_cut
from foto3d.libs.nats_server import NatsServer, NatsServerError, take_store_lock_released

log = logging.getLogger(__name__)

PREFERRED_PORT = 4222
PORT_FILE = "client.port"
# Restart delays after an unexpected exit: first at once, then backing off.
RESTART_DELAYS_S = (0.0, 0.5, 1.0, 2.0, 5.0)
# What nats-server logs when a stream could not write (full disk). A stream stays failed
# after that, also once space is back, until the server is started again.
WRITE_FAILURES = ("critical write error", "no space left on device", "JetStream out of resources")


def port_is_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        # As the server binds (Go sets SO_REUSEADDR): connections of a stopped server
        # lingering in TIME_WAIT must not move the port.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
    return port


def remembered_port(store_dir: Path) -> int | None:
    try:
        port = int((store_dir / PORT_FILE).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return port if 0 < port < 65536 else None


def remember_port(store_dir: Path, port: int) -> None:
    path = store_dir / PORT_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{port}\n")
    os.replace(tmp, path)


def choose_port(store_dir: Path, host: str) -> int:
    """The remembered port if free, else 4222 if free, else any (-1)."""
    for port in (remembered_port(store_dir), PREFERRED_PORT):
        if port is not None and port_is_free(host, port):
            return port
    return -1


@dataclass
class EmbeddedNats:
    store_dir: Path
    name: str = "foto3d-up"
    host: str = "127.0.0.1"
    on_restart: Callable[[NatsServer], Awaitable[None]] | None = None
    # Capture rigs join as leaf nodes here (0: no listener). Chosen once, kept across restarts.
    leafnode_port: int = 0
    # The site's identities (`foto3d auth`): with it, authorization is on, every participant
    # made where missing; without it (a test's bare server) anyone may connect.
    auth_dir: Path | None = None
    server: NatsServer | None = None
    restarts: int = 0
    _log_offset: int = 0
    _planned: bool = False
    _watch: asyncio.Task[None] | None = None
    _stopping: bool = False

    @property
    def client_url(self) -> str:
        return self.server.client_url if self.server else ""

    @property
    def monitor_url(self) -> str:
        return self.server.monitor_url if self.server else ""

    @property
    def stopping(self) -> bool:
        return self._stopping

    @property
    def running(self) -> bool:
        return self.server is not None and self.server.running

    async def start(self) -> None:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        # A server left running on this store goes first: it may hold the remembered port.
        await asyncio.to_thread(take_store_lock_released, self.store_dir)
        port = choose_port(self.store_dir, self.host)
        if self.auth_dir is not None:
            self.identities.ensure_site()
            write_authorization(self.identities)
        if self.leafnode_port and not port_is_free(self.host, self.leafnode_port):
            taken = self.leafnode_port
            self.leafnode_port = free_port(self.host)
            log.warning("leafnode port %d is taken; rigs can join on %d", taken, self.leafnode_port)
        try:
            self.server = await self._spawn(port)
        except NatsServerError:
            if port == -1:
                raise
            # Taken between the check and the bind: any free port still beats not starting.
            self.server = await self._spawn(-1)
        remember_port(self.store_dir, self.server.port)
        self._watch = asyncio.create_task(self._supervise(), name="embedded-nats")

    @property
    def identities(self) -> IdentityStore:
        assert self.auth_dir is not None
        return IdentityStore(self.auth_dir)

    async def reload_authorization(self) -> None:
        """Apply the identities as they are now (a revocation) to the running server, and
        close its leaf links so a revoked rig's goes too (``leafcut.py``)."""
        write_authorization(self.identities)
        if self.server is not None:
            key, _ = self.identities.system_key()
            await reload_and_cut(self.server.reload, self.client_url, self.monitor_url, key)

    @property
    def log_path(self) -> Path:
        return self.store_dir / "nats-server.log"

    def write_failed(self) -> bool:
        """Has the running server logged a failed write to its store since it started?"""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_offset)
                tail = f.read().decode(errors="replace")
        except FileNotFoundError:
            return False
        return any(w in tail for w in WRITE_FAILURES)

    async def restart(self, why: str) -> None:
        """Stop the server and let the supervisor start it again (same port, same store)."""
        if self.server is None:
            return
        log.warning("restarting the embedded nats-server: %s", why)
        self._planned = True
        await asyncio.to_thread(self.server.stop)

    async def _spawn(self, port: int) -> NatsServer:
        try:
            self._log_offset = self.log_path.stat().st_size
        except FileNotFoundError:
            self._log_offset = 0
        leafnodes = (
            f"leafnodes {{\n  listen: {self.host}:{self.leafnode_port}\n}}\n" if self.leafnode_port else None
        )
        server = NatsServer(
            store_dir=self.store_dir,
            port=port,
            name=self.name,
            host=self.host,
            die_with_parent=True,
            config_text=leafnodes,
            includes=[self.identities.folder / "authorization.conf"] if self.auth_dir else [],
        )
        return await server.astart()

    async def _supervise(self) -> None:
        while not self._stopping:
            server = self.server
            assert server is not None and server.proc is not None
            await _wait_exit(server.proc.pid, server)
            if self.stopping:  # a property: the flag changed while we waited
                return
            if not self._planned:
                log.warning(
                    "embedded nats-server exited unexpectedly (status %s); restarting it on port %d",
                    server.proc.returncode,
                    server.port,
                )
            self._planned = False
            self.server = await self._restart(server.port)
            self.restarts += 1
            log.warning("embedded nats-server is back on %s", self.server.client_url)
            if self.on_restart is not None:
                try:
                    await self.on_restart(self.server)
                except Exception:
                    log.exception("reacting to the nats-server restart failed")

    async def _restart(self, port: int) -> NatsServer:
        attempt = 0
        while True:
            delay = RESTART_DELAYS_S[min(attempt, len(RESTART_DELAYS_S) - 1)]
            await asyncio.sleep(delay)
            try:
                return await self._spawn(port)
            except NatsServerError as exc:
                attempt += 1
                log.error("restarting the embedded nats-server on port %d failed: %s", port, exc)

    async def stop(self) -> None:
        self._stopping = True
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        if self.server is not None:
            await asyncio.to_thread(self.server.stop)


async def _wait_exit(pid: int, server: NatsServer) -> None:
    """Return when the process ends: a pidfd becomes readable then (no polling)."""
    loop = asyncio.get_running_loop()
    try:
        fd = os.pidfd_open(pid)
    except (OSError, AttributeError):
        while server.running:
            await asyncio.sleep(0.2)
        return
    done: asyncio.Future[None] = loop.create_future()

    def exited() -> None:
        if not done.done():
            done.set_result(None)

    loop.add_reader(fd, exited)
    try:
        if server.running:
            await done
    finally:
        loop.remove_reader(fd)
        os.close(fd)
    assert server.proc is not None
    server.proc.poll()  # reap it, so returncode is known
