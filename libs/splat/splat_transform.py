"""Run PlayCanvas' ``splat-transform`` (Node), pinned in ``tools/node/package.json``.

We call it where it does a job better than we would (SOG: k-means-coded WebP textures) and use it
as the independent decoder in round-trip tests and benchmarks. Lookup order: the
``FOTO3D_SPLAT_TRANSFORM`` environment variable (a command line), then the repository's
``tools/node/node_modules/.bin/splat-transform``, then ``splat-transform`` on PATH.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

from foto3d.libs.splat.errors import SplatFormatError

_REPO_BIN = (
    Path(__file__).resolve().parents[2] / "tools" / "node" / "node_modules" / ".bin" / "splat-transform"
)


def command() -> list[str] | None:
    """The command prefix that runs splat-transform, or None if it is not installed."""
    env = os.environ.get("FOTO3D_SPLAT_TRANSFORM")
    if env:
        return shlex.split(env)
    if shutil.which("node") is None:
        return None
    if _REPO_BIN.exists():
        return [str(_REPO_BIN)]
    found = shutil.which("splat-transform")
    return [found] if found else None


def available() -> bool:
    return command() is not None


def run(args: list[str], *, timeout: float = 600.0) -> str:
    """Run splat-transform with ``args`` (quiet, overwrite); return its stdout or raise."""
    cmd = command()
    if cmd is None:
        raise SplatFormatError(
            "this needs @playcanvas/splat-transform (Node 20+): run `npm install` in tools/node, "
            "or set FOTO3D_SPLAT_TRANSFORM to its command"
        )
    try:
        proc = subprocess.run(
            [*cmd, "-q", "-w", *args], capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise SplatFormatError(f"splat-transform took longer than {timeout:.0f} s") from None
    except OSError as exc:
        raise SplatFormatError(f"cannot run splat-transform: {exc}") from None
    if proc.returncode != 0:
        msg = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        raise SplatFormatError(f"splat-transform failed: {msg[-1] if msg else f'exit {proc.returncode}'}")
    return proc.stdout
