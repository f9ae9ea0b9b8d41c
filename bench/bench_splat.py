"""Splat reduction and conversion on real trained scenes: foto3d against ``@playcanvas/splat-transform``.

Scenes come from ``bench/fetch_scenes.py`` (PlayCanvas' engine examples; -Y up) in
``bench/out/scenes/``. For each scene, in the same run and the same way (each operation a child
process, wall time with start-up):

1. ``convert``: plain conversion .ply -> .spz: ``foto3d splat convert`` against ``splat-transform``;
2. ``ply``: per keep fraction (default 0.5, 0.25, 0.1), reduction to a .ply: ``foto3d splat reduce
   --keep K`` (default settings: merge, then the re-fit within its default budget) against
   ``splat-transform -d K%`` (its default decimation);
3. ``spz``: the web setting per keep: ours ``--sh-degree 1`` written as .spz against
   splat-transform ``-H 1 -d K%`` then .ply -> .spz (both runs counted); ``--web-sh-degree``
   sets another degree for both.

Children run with ``OMP_NUM_THREADS=1`` (torch single-threaded; splat-transform does not read
it): on a shared 2-core machine torch's two-thread pool waits on busy cores and measured 20-50x
slower than one thread.

Every output is read back by our reader, turned into the input's frame, and rendered with the
CPU rasterizer from orbit views around the original; PSNR and SSIM are against the original's
renders, "x smaller" against the input .ply.

Usage: .venv/bin/python bench/bench_splat.py [--scenes biker,guitar,logo,playbot]
       [--keeps 0.5,0.25,0.1] [--ops convert,ply,spz] [--views 8] [--size 192]
       [--refit-steps N] [--refit-seconds S] [--web-sh-degree 1] [--json FILE]
       .venv/bin/python bench/bench_splat.py --synthetic 200000   # smoke test only, not evidence
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from foto3d.libs.splat import read, write
from foto3d.libs.splat import splat_transform as st
from foto3d.libs.splat.coords import reorient
from foto3d.libs.splat.model import Splat
from foto3d.libs.splat.quality import orbit_cameras, render_images, score_images

SCENES = Path(__file__).resolve().parent / "out" / "scenes"
FOTO3D = [sys.executable, "-m", "foto3d.cli.main", "splat"]
UP = "-y"  # PlayCanvas' scenes
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
OPS = ("convert", "ply", "spz")


@dataclass
class Row:
    scene: str
    operation: str
    tool: str
    seconds: float = math.nan
    bytes: int = 0
    x_smaller: float = math.nan
    count: int = 0
    psnr: float = math.nan
    ssim: float = math.nan
    error: str = ""


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False, env=ENV)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd[:5])}...: exit {proc.returncode}: {proc.stderr.decode()[-300:]}")
    return time.perf_counter() - t0


def peer(*args: str) -> list[str]:
    cmd = st.command()
    assert cmd is not None
    return [*cmd, "-q", "-w", "-g", "cpu", *args]


def load_in_input_frame(path: Path, tool: str) -> Splat:
    """Our outputs are in the input's frame (-y up, spz decoded RUB -> RDF). splat-transform 3.7
    writes .spz without the RUB turn, so our spec-following reader sees it half a turn about x."""
    s = read(path)
    if tool == "splat-transform" and path.suffix == ".spz":
        s = reorient(s, "y", "-y")
    return s


def run_scene(
    name: str,
    src: Path,
    work: Path,
    keeps: list[float],
    views: int,
    size: int,
    ops: set[str],
    extra: list[str],
    web_sh: int = 1,
) -> list[Row]:
    original = read(src)
    ply_bytes = src.stat().st_size
    cams = orbit_cameras(original, views=views, size=size, up=UP)
    t0 = time.perf_counter()
    reference = render_images(original, cams)
    print(
        f"{name}: {original.count:,} gaussians, SH {original.sh_degree}, {ply_bytes / 2**20:.1f} MiB .ply; "
        f"reference {views} views at {size}px in {time.perf_counter() - t0:.0f}s",
        flush=True,
    )
    rows: list[Row] = []

    def measure(row: Row, steps: list[list[str]], out: Path) -> None:
        try:
            row.seconds = sum(timed(c) for c in steps)
        except RuntimeError as exc:
            row.error = str(exc)
        else:
            row.bytes = out.stat().st_size
            row.x_smaller = ply_bytes / row.bytes
            s = load_in_input_frame(out, row.tool)
            row.count = s.count
            scores = score_images(reference, render_images(s, cams))
            row.psnr = float(np.mean([v.psnr for v in scores]))
            row.ssim = float(np.mean([v.ssim for v in scores]))
        rows.append(row)
        print(_line(row), flush=True)

    up = ["--up", UP]
    if "convert" in ops:
        o = work / f"{name}-ours.spz"
        measure(
            Row(name, "convert -> spz", "foto3d"),
            [[*FOTO3D, "convert", str(src), "-o", str(o), "--force", *up]],
            o,
        )
        o = work / f"{name}-peer.spz"
        measure(Row(name, "convert -> spz", "splat-transform"), [peer(str(src), str(o))], o)
    for keep in keeps:
        pct = f"{round(keep * 100)}%"
        if "ply" in ops:
            o = work / f"{name}-ours-{pct}.ply"
            cmd = [*FOTO3D, "reduce", str(src), "-o", str(o), "--keep", str(keep), "--force", *up, *extra]
            measure(Row(name, f"keep {keep} -> ply", "foto3d"), [cmd], o)
            o = work / f"{name}-peer-{pct}.ply"
            measure(
                Row(name, f"keep {keep} -> ply", "splat-transform"), [peer(str(src), "-d", pct, str(o))], o
            )
        if "spz" not in ops:
            continue
        o = work / f"{name}-ours-{pct}-h{web_sh}.spz"
        cmd = [
            *FOTO3D,
            "reduce",
            str(src),
            "-o",
            str(o),
            "--keep",
            str(keep),
            "--sh-degree",
            str(web_sh),
            "--force",
            *up,
        ]
        label = f"keep {keep}, SH{web_sh} -> spz"
        measure(Row(name, label, "foto3d"), [cmd + extra], o)
        mid, o = work / f"{name}-peer-{pct}-h{web_sh}.ply", work / f"{name}-peer-{pct}-h{web_sh}.spz"
        steps = [peer(str(src), "-H", str(web_sh), "-d", pct, str(mid)), peer(str(mid), str(o))]
        measure(Row(name, label, "splat-transform"), steps, o)
    return rows


def _line(r: Row) -> str:
    if r.error:
        return f"| {r.scene} | {r.operation} | {r.tool} | failed: {r.error} | | | | | |"
    return (
        f"| {r.scene} | {r.operation} | {r.tool} | {r.seconds:.1f} | {r.bytes:,} | {r.x_smaller:.1f}x | "
        f"{r.count:,} | {r.psnr:.2f} | {r.ssim:.4f} |"
    )


def summary(rows: list[Row]) -> str:
    """Per scene and operation: ours minus the peer in dB, and ours over the peer in bytes and time."""
    out = [
        "| scene | operation | PSNR ours - peer dB | bytes ours / peer | time ours / peer |",
        "|---|---|---:|---:|---:|",
    ]
    ours = {(r.scene, r.operation): r for r in rows if r.tool == "foto3d"}
    for r in rows:
        o = ours.get((r.scene, r.operation))
        if r.tool == "foto3d" or o is None or r.error or o.error:
            continue
        out.append(
            f"| {r.scene} | {r.operation} | {o.psnr - r.psnr:+.2f} | {o.bytes / r.bytes:.3f} | "
            f"{o.seconds / r.seconds:.2f} |"
        )
    return "\n".join(out)


HEAD = (
    "| scene | operation | tool | time s | bytes | vs .ply | gaussians | PSNR dB | SSIM |\n"
    "|---|---|---|---:|---:|---:|---:|---:|---:|"
)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenes", default="biker,guitar,logo,playbot", help="scene names in bench/out/scenes")
    ap.add_argument("--keeps", default="0.5,0.25,0.1", help="keep fractions")
    ap.add_argument("--views", type=int, default=8, help="orbit views for PSNR/SSIM")
    ap.add_argument("--size", type=int, default=192, help="render size in pixels")
    ap.add_argument("--ops", default=",".join(OPS), help="what to run: convert, ply, spz (see above)")
    ap.add_argument(
        "--refit-steps", type=int, help="pass --refit-steps N to foto3d reduce (default: its own)"
    )
    ap.add_argument("--refit-seconds", type=float, help="pass --refit-seconds S to foto3d reduce")
    ap.add_argument(
        "--web-sh-degree", type=int, default=1, choices=range(4), help="SH degree of the spz op's outputs"
    )
    ap.add_argument("--synthetic", type=int, default=0, help="smoke test on N synthetic gaussians instead")
    ap.add_argument("--workdir", type=Path, help="keep outputs here (default: a temp folder)")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = ap.parse_args()
    if not st.available():
        print("splat-transform is not installed: run `npm install` in tools/node", file=sys.stderr)
        return 2
    keeps = [float(k) for k in args.keeps.split(",")]
    ops = set(args.ops.split(","))
    if not ops <= set(OPS):
        print(f"unknown --ops {args.ops!r} (choose from {', '.join(OPS)})", file=sys.stderr)
        return 2
    extra = [] if args.refit_steps is None else ["--refit-steps", str(args.refit_steps)]
    extra += [] if args.refit_seconds is None else ["--refit-seconds", str(args.refit_seconds)]
    import torch  # the reference renders: one thread, like the children (see above)

    torch.set_num_threads(1)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-splat-") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        if args.synthetic:
            from foto3d.libs.splat.synthetic import synthetic_object

            src = work / "synthetic.ply"
            write(synthetic_object(args.synthetic, sh_degree=3, seed=0), src, up=UP)
            scenes = [("synthetic", src)]
        else:
            scenes = [(n, SCENES / f"{n}.ply") for n in args.scenes.split(",")]
            missing = [str(p) for _, p in scenes if not p.is_file()]
            if missing:
                print(f"missing scenes ({', '.join(missing)}): run bench/fetch_scenes.py", file=sys.stderr)
                return 2
        print(HEAD, flush=True)
        for name, src in scenes:
            rows += run_scene(name, src, work, keeps, args.views, args.size, ops, extra, args.web_sh_degree)
    print()
    print(HEAD)
    print("\n".join(_line(r) for r in rows))
    print()
    print(summary(rows))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
