"""Run `foto3d up` as a real process in its own process group, and look at what it started."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

FOTO3D = [sys.executable, "-m", "foto3d.cli.main"]


def up_env(data: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "FOTO3D_DATA": str(data), **extra}
    env.pop("FOTO3D_NATS_URL", None)
    return env


@contextmanager
def running_up(data: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[str]]:
    """`foto3d up` as the leader of its own process group; stopped with Ctrl-C afterwards."""
    proc = subprocess.Popen(
        [*FOTO3D, "up", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env or up_env(data),
        start_new_session=True,
    )
    try:
        wait_for_line(proc, "Press Ctrl-C")
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()


def wait_for_line(proc: subprocess.Popen[str], needle: str, timeout: float = 90) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if needle in line:
            return lines
    os.killpg(proc.pid, signal.SIGKILL)
    raise AssertionError(f"{needle!r} not printed; output:\n{''.join(lines)}")


def endpoints(data: Path) -> dict[str, Any]:
    return dict(json.loads((data / "run" / "endpoints.json").read_text()))


def server_pid(data: Path) -> int:
    return int((data / "nats" / "nats-server.pid").read_text().strip())


def servers_on_store(data: Path) -> list[int]:
    """Pids of every live nats-server whose JetStream store is this data folder's."""
    store = str(data / "nats" / "jetstream").encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().split(")")[-1].split()[0]
        except OSError:
            continue
        if cmd and cmd[0].endswith(b"nats-server") and store in cmd and state != "Z":
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_until(cond: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``cond`` (a process state has no event to await here); returns the seconds taken."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if cond():
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def healthz(base: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(base + "/healthz", timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def stored_messages(data: Path, like: str = "%") -> list[str]:
    path = data / "log_collector" / "logs.db"
    if not path.exists():
        return []
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        rows = con.execute("SELECT message FROM logs WHERE message LIKE ?", (like,)).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        con.close()
    return [r[0] for r in rows]
