"""Splat reduction and conversion on real trained scenes: foto3d against ``@playcanvas/splat-transform``.

Scenes come from ``bench/fetch_scenes.py`` (PlayCanvas' engine examples; -Y up) in
``bench/out/scenes/``. For each scene, in the same run and the same way (each operation a child
process, wall time with start-up):

1. plain conversion .ply -> .spz: ``foto3d splat convert`` against ``splat-transform``;
2. per keep fraction (default 0.5, 0.25, 0.1), reduction to a .ply: ``foto3d splat reduce
   --keep K`` (default settings) against ``splat-transform -d K%`` (its default decimation);
3. the web setting per keep: ours ``--sh-degree 1`` written as .spz against splat-transform
   ``-H 1 -d K%`` then .ply -> .spz (both runs counted).

Every output is read back by our reader, turned into the input's frame, and rendered with the
CPU rasterizer from orbit views around the original; PSNR and SSIM are against the original's
renders, "x smaller" against the input .ply.

Usage: .venv/bin/python bench/bench_splat.py [--scenes biker,guitar,logo,playbot]
       [--keeps 0.5,0.25,0.1] [--views 8] [--size 192] [--refit-steps N] [--json FILE]
       .venv/bin/python bench/bench_splat.py --synthetic 200000   # smoke test only, not evidence
"""

from __future__ import annotations

import argparse
import json
import math
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
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
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
    name: str, src: Path, work: Path, keeps: list[float], views: int, size: int, refit: int
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
        extra = ["--refit-steps", str(refit)] if refit else []
        o = work / f"{name}-ours-{pct}.ply"
        cmd = [*FOTO3D, "reduce", str(src), "-o", str(o), "--keep", str(keep), "--force", *up, *extra]
        measure(Row(name, f"keep {keep} -> ply", "foto3d"), [cmd], o)
        o = work / f"{name}-peer-{pct}.ply"
        measure(Row(name, f"keep {keep} -> ply", "splat-transform"), [peer(str(src), "-d", pct, str(o))], o)
        o = work / f"{name}-ours-{pct}-h1.spz"
        cmd = [
            *FOTO3D,
            "reduce",
            str(src),
            "-o",
            str(o),
            "--keep",
            str(keep),
            "--sh-degree",
            "1",
            "--force",
            *up,
        ]
        measure(Row(name, f"keep {keep}, SH1 -> spz", "foto3d"), [cmd + extra], o)
        mid, o = work / f"{name}-peer-{pct}-h1.ply", work / f"{name}-peer-{pct}-h1.spz"
        steps = [peer(str(src), "-H", "1", "-d", pct, str(mid)), peer(str(mid), str(o))]
        measure(Row(name, f"keep {keep}, SH1 -> spz", "splat-transform"), steps, o)
    return rows


def _line(r: Row) -> str:
    if r.error:
        return f"| {r.scene} | {r.operation} | {r.tool} | failed: {r.error} | | | | | |"
    return (
        f"| {r.scene} | {r.operation} | {r.tool} | {r.seconds:.1f} | {r.bytes:,} | {r.x_smaller:.1f}x | "
        f"{r.count:,} | {r.psnr:.2f} | {r.ssim:.4f} |"
    )


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
    ap.add_argument("--refit-steps", type=int, default=0, help="pass --refit-steps N to foto3d reduce")
    ap.add_argument("--synthetic", type=int, default=0, help="smoke test on N synthetic gaussians instead")
    ap.add_argument("--workdir", type=Path, help="keep outputs here (default: a temp folder)")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = ap.parse_args()
    if not st.available():
        print("splat-transform is not installed: run `npm install` in tools/node", file=sys.stderr)
        return 2
    keeps = [float(k) for k in args.keeps.split(",")]
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
            rows += run_scene(name, src, work, keeps, args.views, args.size, args.refit_steps)
    print()
    print(HEAD)
    print("\n".join(_line(r) for r in rows))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
