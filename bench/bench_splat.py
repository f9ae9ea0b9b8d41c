"""Splat reduction benchmark: foto3d against ``@playcanvas/splat-transform`` on the same input.

On a synthetic product scene (``synthetic_object``, SH degree 3; 1,000,000 gaussians by default)
written as a standard .ply, every operation runs as its own child process, ours and
splat-transform's alike, and is measured the same way: wall time and the child's peak RSS
(``wait4`` rusage). Operations:

1. convert: read the .ply, write each format (no reduction);
2. reduce to 50 %, write each format: ours (``foto3d splat reduce --keep 0.5``, opacity x area
   score and the orbit-view significance score) against splat-transform's ``--decimate 50%``
   (which must write .ply, so other formats take a second splat-transform run; both counted);
3. the recommended publishing settings (50 %, SH degree 1) and splat-transform with the same
   ``-H 1``.

Every output is read back by our reader and rendered from the same orbit views as the original;
PSNR/SSIM are against the original's renders, sizes against the .ply.

Usage: .venv/bin/python bench/bench_splat.py [--n 1000000] [--views 8] [--size 192]
       [--formats ply,compressed.ply,spz[,sog]] [--workdir DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from foto3d.libs.splat import read, write
from foto3d.libs.splat import splat_transform as st
from foto3d.libs.splat.coords import FORMAT_UP, reorient
from foto3d.libs.splat.io import format_from_name
from foto3d.libs.splat.model import Splat
from foto3d.libs.splat.quality import orbit_cameras, render_images, score_images
from foto3d.libs.splat.synthetic import synthetic_object

FOTO3D = [sys.executable, "-m", "foto3d.cli.main", "splat"]


@dataclass
class Run:
    label: str
    tool: str
    output: Path
    seconds: float = 0.0
    peak_mib: float = 0.0
    bytes: int = 0
    psnr: float = math.nan
    ssim: float = math.nan
    count: int = 0
    error: str = ""
    steps: list[list[str]] = field(default_factory=list)


def measure(cmd: list[str]) -> tuple[float, float, str]:
    """(seconds, peak RSS MiB, stderr tail) of one child process.

    The child is started through GNU ``time``: Linux carries a forking parent's peak RSS over into
    the child's ``ru_maxrss``, so measuring from this (large) process would report our own size."""
    with tempfile.NamedTemporaryFile(prefix="bench-rss-") as rss:
        t0 = time.perf_counter()
        proc = subprocess.run(
            ["/usr/bin/time", "-q", "-f", "%M", "-o", rss.name, *cmd],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            check=False,
        )
        seconds = time.perf_counter() - t0
        err = proc.stderr.decode(errors="replace")
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[:6])}...: exit {proc.returncode}: {err.strip()[-300:]}")
        peak_kib = int(Path(rss.name).read_text().split()[-1])
    return seconds, peak_kib / 1024.0, err


def execute(run: Run) -> None:
    for cmd in run.steps:
        try:
            s, m, _ = measure(cmd)
        except RuntimeError as exc:
            run.error = str(exc)
            return
        run.seconds += s
        run.peak_mib = max(run.peak_mib, m)
    run.bytes = run.output.stat().st_size


def st_cmd(*args: str) -> list[str]:
    cmd = st.command()
    assert cmd is not None
    # -g cpu: this host has no GPU adapter; decimate and SOG need the flag to run at all.
    return [*cmd, "-q", "-w", "-g", "cpu", *args]


def st_write(src: Path, dst: Path) -> list[str]:
    return st_cmd(str(src), str(dst))


def plan(inp: Path, out: Path, formats: list[str], n: int) -> list[Run]:
    runs: list[Run] = []
    half = n // 2
    for fmt in formats:
        name = f"object.{fmt}"
        o = out / f"ours-convert-{name}"
        runs.append(
            Run(
                f"convert -> {fmt}",
                "foto3d",
                o,
                steps=[[*FOTO3D, "convert", str(inp), "-o", str(o), "--force"]],
            )
        )
        o = out / f"st-convert-{name}"
        runs.append(Run(f"convert -> {fmt}", "splat-transform", o, steps=[st_write(inp, o)]))
    for fmt in [f for f in formats if f != "sog"]:  # SOG: see the recommended rows below
        name = f"object.{fmt}"
        for imp in ("area", "views"):
            if imp == "views" and fmt not in ("ply", "spz"):
                continue
            o = out / f"ours-{imp}-{name}"
            cmd = [*FOTO3D, "reduce", str(inp), "-o", str(o), "--keep", "0.5", "--importance", imp, "--force"]
            runs.append(Run(f"reduce 50% -> {fmt}", f"foto3d ({imp})", o, steps=[cmd]))
        mid = out / "st-decimate.ply"
        o = out / f"st-decimate-{name}"
        steps = [st_cmd(str(inp), "-d", str(half), str(o if fmt == "ply" else mid))]
        if fmt != "ply":
            steps.append(st_write(mid, o))
        runs.append(Run(f"reduce 50% -> {fmt}", "splat-transform (decimate)", o, steps=steps))
    for fmt in [f for f in ("spz", "sog") if f in formats]:
        name = f"object.{fmt}"
        for imp in ("area", "views"):
            o = out / f"ours-rec-{imp}-{name}"
            cmd = [*FOTO3D, "reduce", str(inp), "-o", str(o), "--keep", "0.5", "--sh-degree", "1"]
            runs.append(
                Run(
                    f"50% + SH1 -> {fmt}",
                    f"foto3d ({imp})",
                    o,
                    steps=[[*cmd, "--importance", imp, "--force"]],
                )
            )
        mid = out / "st-decimate-h1.ply"
        o = out / f"st-rec-{name}"
        runs.append(
            Run(
                f"50% + SH1 -> {fmt}",
                "splat-transform (decimate, -H 1)",
                o,
                steps=[st_cmd(str(inp), "-H", "1", "-d", str(half), str(mid)), st_write(mid, o)],
            )
        )
    return runs


def load_in_input_frame(run: Run) -> Splat:
    """Read an output back and turn it into the input .ply's frame (z up). Ours rotates web formats
    to -y up when writing; splat-transform keeps the input's frame, except that its .spz, decoded
    by our RUB-aware reader, comes back turned half a turn about x (y and z negated)."""
    s = read(run.output)
    fmt = format_from_name(run.output) or "ply"
    if run.tool.startswith("foto3d") and FORMAT_UP[fmt] != "z":
        s = reorient(s, FORMAT_UP[fmt], "z")
    elif fmt == "spz":
        s = reorient(s, "-y", "y")
    return s


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="gaussians in the synthetic scene")
    ap.add_argument("--views", type=int, default=8, help="orbit views for PSNR/SSIM")
    ap.add_argument("--size", type=int, default=192, help="render size in pixels")
    ap.add_argument(
        "--formats",
        default="ply,compressed.ply,spz",
        help="output formats (add sog for SOG rows: splat-transform's CPU k-means is slow at SH 3)",
    )
    ap.add_argument("--workdir", type=Path, help="keep files here (default: a temp folder)")
    ap.add_argument("--json", type=Path, help="also write the results as JSON")
    args = ap.parse_args()
    if not st.available():
        print("splat-transform is not installed: run `npm install` in tools/node", file=sys.stderr)
        return 2
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    with tempfile.TemporaryDirectory(prefix="bench-splat-") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        inp = work / "object.ply"
        t0 = time.perf_counter()
        original = synthetic_object(args.n, sh_degree=3, seed=0)
        write(original, inp)
        ply_bytes = inp.stat().st_size
        print(
            f"scene: {args.n:,} gaussians, SH 3, {ply_bytes / 2**20:.1f} MiB .ply ({time.perf_counter() - t0:.1f}s to make)"
        )
        cams = orbit_cameras(original, views=args.views, size=args.size)
        t0 = time.perf_counter()
        reference = render_images(original, cams)
        print(f"reference renders: {args.views} views at {args.size}px in {time.perf_counter() - t0:.1f}s")
        runs = plan(inp, work, formats, args.n)
        for run in runs:
            execute(run)
            if not run.error:
                s = load_in_input_frame(run)
                run.count = s.count
                if (
                    run.label.startswith("convert")
                    and run.output.suffix == ".ply"
                    and ".compressed" not in run.output.name
                ):
                    run.psnr, run.ssim = math.inf, 1.0  # lossless: skip the renders
                else:
                    scores = score_images(reference, render_images(s, cams))
                    run.psnr = float(np.mean([v.psnr for v in scores]))
                    run.ssim = float(np.mean([v.ssim for v in scores]))
            print(_row(run, ply_bytes), flush=True)
        print()
        print(_table(runs, ply_bytes))
        if args.json:
            args.json.write_text(json.dumps([_as_dict(r, ply_bytes) for r in runs], indent=2))
    return 0


def _as_dict(r: Run, ply_bytes: int) -> dict[str, object]:
    return {
        "operation": r.label,
        "tool": r.tool,
        "seconds": round(r.seconds, 2),
        "peak_mib": round(r.peak_mib),
        "bytes": r.bytes,
        "x_smaller": round(ply_bytes / r.bytes, 2) if r.bytes else None,
        "count": r.count,
        "psnr": r.psnr if math.isfinite(r.psnr) else str(r.psnr),
        "ssim": r.ssim,
        "error": r.error,
    }


def _row(r: Run, ply_bytes: int) -> str:
    if r.error:
        return f"| {r.label} | {r.tool} | failed: {r.error} | | | | | |"
    ratio = ply_bytes / r.bytes if r.bytes else math.nan
    return (
        f"| {r.label} | {r.tool} | {r.seconds:.1f} | {r.peak_mib:,.0f} | {r.bytes / 2**20:.1f} | "
        f"{ratio:.1f}x | {r.count:,} | {r.psnr:.2f} | {r.ssim:.4f} |"
    )


def _table(runs: list[Run], ply_bytes: int) -> str:
    head = (
        "| operation | tool | time s | peak RSS MiB | size MiB | vs .ply | gaussians | PSNR dB | SSIM |\n"
        "|---|---|---:|---:|---:|---:|---:|---:|---:|"
    )
    return "\n".join([head, *(_row(r, ply_bytes) for r in runs)])


if __name__ == "__main__":
    sys.exit(main())
