"""Shared parts of the fake ``ns-*`` executables used by the trainer tests.

They speak nerfstudio 1.1.5's command line and write its output layout and
formats (config.yml, checkpoints, a binary little-endian 3DGS ``splat.ply``)
without CUDA. Behaviour switches, all environment variables:

- ``FAKE_NS_FAIL=<step>``: ``process-data``, ``train`` or ``export`` exits 1 with a traceback.
- ``FAKE_NS_FAIL_ONCE=<step>:<marker file>``: the same, on the first run only (a retry succeeds).
- ``FAKE_NS_HANG=<step>``: that step stops making progress and sleeps forever.
- ``FAKE_NS_STEP_DELAY=<seconds>``: time per training step (default 0.001).
- ``FAKE_NS_GAUSSIANS=<n>``: size of the exported cloud (default 2000).
- ``FAKE_NS_LEDGER=<file>``: ns-train appends ``start``/``end`` lines with pid, time and output dir.

Every option is checked against the real nerfstudio 1.1.5's ``--help`` (dumped by
``scripts/nerfstudio-help.sh`` into ``nerfstudio-1.1.5/``): an option nerfstudio does not know
is refused the way tyro refuses it (exit 2), so a misspelt or removed flag fails the suite.

Only the standard library is used: the scripts run under whatever ``python3`` is on PATH.
"""

from __future__ import annotations

import math
import os
import random
import re
import struct
import sys
import time
from pathlib import Path

HELP_DIR = Path(__file__).resolve().parent / "nerfstudio-1.1.5"
# An option begins a cell of tyro's help boxes: "│ --name ..." or "│ -h, --help ...".
_OPTION = re.compile(r"^│\s(?:-\w, )?(--[a-z0-9][a-z0-9._-]*)", re.MULTILINE)


def known_options(command: str) -> frozenset[str]:
    """The options ``command`` (e.g. ``ns-train-splatfacto``) has in nerfstudio 1.1.5."""
    return frozenset(_OPTION.findall((HELP_DIR / f"{command}.txt").read_text(encoding="utf-8")))


def refuse_unknown_options(command: str, argv: list[str]) -> None:
    """Exit 2 naming every option nerfstudio 1.1.5 would not accept, as tyro does."""
    known = known_options(command)
    unknown = [a.split("=", 1)[0] for a in argv if a.startswith("--") and a.split("=", 1)[0] not in known]
    if unknown:
        print(f"usage: {command.replace('-', ' ', 1)} [-h] [OPTIONS]", file=sys.stderr)
        print(f"Unrecognized options: {' '.join(unknown)} (not in nerfstudio 1.1.5)", file=sys.stderr)
        sys.exit(2)


def step_is(var: str, step: str) -> bool:
    return os.environ.get(var, "") == step


def _fail_once(step: str) -> bool:
    """``FAKE_NS_FAIL_ONCE=<step>:<marker file>``: fail the first run only (the marker remembers)."""
    spec = os.environ.get("FAKE_NS_FAIL_ONCE", "")
    name, _, marker = spec.partition(":")
    if name != step or not marker or os.path.exists(marker):
        return False
    Path(marker).write_text("failed once\n")
    return True


def maybe_fail(step: str, message: str) -> None:
    if step_is("FAKE_NS_FAIL", step) or _fail_once(step):
        print("Traceback (most recent call last):", file=sys.stderr, flush=True)
        print(f'  File "nerfstudio/scripts/{step}.py", line 262, in main', file=sys.stderr, flush=True)
        print(message, file=sys.stderr, flush=True)
        sys.exit(1)


def maybe_hang(step: str) -> None:
    if step_is("FAKE_NS_HANG", step):
        print(f"[fake] {step} hangs now", flush=True)
        while True:
            time.sleep(3600)


def ledger(event: str, what: str) -> None:
    path = os.environ.get("FAKE_NS_LEDGER")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"{event} {os.getpid()} {time.time():.6f} {what}\n")


def format_time(seconds: float) -> str:
    """Nerfstudio's ``_format_time`` layout ('12 m, 3 s', '3 s, 120.000 ms', ...)."""
    ms = (seconds % 1) * 1e3
    s = int(seconds)
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days > 0:
        return f"{days} d, {hours} h, {minutes} m, {s} s"
    if hours > 0:
        return f"{hours} h, {minutes} m, {s} s"
    if minutes > 0:
        return f"{minutes} m, {s} s"
    if s > 0:
        return f"{s} s, {ms:0.3f} ms"
    return f"{ms:0.3f} ms"


def stats_header(columns: list[str]) -> str:
    msg = f"{'Step (% Done)':<20}"
    for name in columns:
        msg += f"{name:<20} "
    return msg


def stats_row(step: int, max_iter: int, values: list[str]) -> str:
    first = f"{step} ({step / max_iter * 100:.02f}%)"
    msg = f"{first:<20}"
    for v in values:
        msg += f"{v:<20} "
    return msg


def sh_rest_count(sh_degree: int) -> int:
    return 3 * ((sh_degree + 1) ** 2 - 1)


def write_splat_ply(path: Path, count: int, sh_degree: int, seed: int = 7) -> None:
    """A deterministic gaussian cloud in nerfstudio's ``ns-export gaussian-splat`` layout."""
    rest = sh_rest_count(sh_degree)
    names = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    names += [f"f_rest_{i}" for i in range(rest)]
    names += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {count}"]
    header += [f"property float {n}" for n in names]
    header.append("end_header")
    rng = random.Random(seed)
    row = struct.Struct("<" + "f" * len(names))
    with path.open("wb") as f:
        f.write(("\n".join(header) + "\n").encode("ascii"))
        for _ in range(count):
            x, y, z = (rng.gauss(0.0, 0.5) for _ in range(3))
            dc = [rng.uniform(-1.0, 1.0) for _ in range(3)]
            sh = [rng.gauss(0.0, 0.05) for _ in range(rest)]
            opacity = rng.uniform(-2.0, 4.0)
            scales = [math.log(rng.uniform(0.005, 0.05)) for _ in range(3)]
            q = [rng.gauss(0.0, 1.0) for _ in range(4)]
            n = math.sqrt(sum(c * c for c in q)) or 1.0
            f.write(row.pack(x, y, z, 0.0, 0.0, 0.0, *dc, *sh, opacity, *scales, *(c / n for c in q)))
