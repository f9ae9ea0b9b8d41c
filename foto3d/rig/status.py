"""The agent's status file, and reading it back for `foto3d rig status` and the panel.

A file rather than a request: the panel and the terminal must still say something
useful when the agent is not running (that it is not, and what to do).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path

import msgspec

from foto3d.libs.nats_server import pid_alive
from foto3d.proto.rig import LinkState, RigProblem, RigStatus

_enc = msgspec.json.Encoder()
_dec = msgspec.json.Decoder(RigStatus)
STALE_AFTER_S = 5.0


def status_path(rig_dir: Path) -> Path:
    return rig_dir / "run" / "status.json"


def write_status(rig_dir: Path, status: RigStatus) -> None:
    path = status_path(rig_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A name of its own per write: a write still running in a worker thread when the agent
    # stops must not have its temporary file taken by the final write.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="status.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(_enc.encode(status))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def remove_stale_temporaries(rig_dir: Path, older_than_s: float = 60.0) -> None:
    """Remove what writes cut by a kill -9 left behind (a write's own file lives milliseconds)."""
    now = time.time()
    for tmp in status_path(rig_dir).parent.glob("status.*.tmp"):
        with contextlib.suppress(OSError):
            if now - tmp.stat().st_mtime > older_than_s:
                tmp.unlink()


def agent_down(rig_id: str, why: str) -> RigProblem:
    return RigProblem(
        ts=time.time(),
        text=f"The rig agent is not running ({why}). New photos and logs are still kept on the rig "
        "while its local server runs, but nothing is sent.",
        action="Start it: `sudo systemctl restart foto3d-rig` (or `foto3d rig up`). If it stops "
        "again, `journalctl -u foto3d-rig` says why.",
    )


def read_status(rig_dir: Path, rig_id: str) -> RigStatus:
    """The agent's last status; when it is missing or stale, an offline status that says so."""
    path = status_path(rig_dir)
    try:
        status: RigStatus = _dec.decode(path.read_bytes())
    except (FileNotFoundError, msgspec.DecodeError, msgspec.ValidationError):
        return RigStatus(
            rig_id=rig_id,
            ts=time.time(),
            link=LinkState.OFFLINE,
            since=time.time(),
            problems=[agent_down(rig_id, "it has not reported yet")],
        )
    alive = status.agent_pid is not None and pid_alive(status.agent_pid)
    if alive and time.time() - status.ts <= STALE_AFTER_S:
        return status
    why = "its process has ended" if not alive else f"no report for {time.time() - status.ts:.0f} s"
    return msgspec.structs.replace(
        status,
        link=LinkState.OFFLINE,
        site=None,
        upload=None,  # nobody is uploading
        problems=[agent_down(rig_id, why), *status.problems],
    )
