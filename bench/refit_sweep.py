"""How much re-fitting (``reduce --refit-steps``) adds to a merged splat, per scene and step count.

For each scene ``NAME.ply`` in ``--dir`` and each keep K with a ``NAME-merged-K.ply`` beside it
(``foto3d splat reduce NAME.ply --keep K -o NAME-merged-K.ply``), re-fits the merged splat with
each step count and prints PSNR against the original's renders from the benchmark's orbit views
(which the re-fit never sees: it fits on a Fibonacci sphere of other views) and the seconds taken.
Needs torch only (no Node), so it also runs on a machine without the peer; the peer's figures
for the same views come from ``bench/bench_splat.py``.

Usage: python bench/refit_sweep.py --dir bench/out/scenes --scenes biker,guitar --keeps 0.5,0.1
       --steps 0,100,300 [--views 8] [--size 192] [--up -y] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from foto3d.libs.splat import read
from foto3d.libs.splat.quality import orbit_cameras, psnr
from foto3d.libs.splat.refit import RefitOptions, refit
from foto3d.libs.splat.render import render_views


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", type=Path, required=True)
    ap.add_argument("--scenes", required=True)
    ap.add_argument("--keeps", default="0.5,0.25,0.1")
    ap.add_argument("--steps", default="0,100,300")
    ap.add_argument("--views", type=int, default=8)
    ap.add_argument("--size", type=int, default=192)
    ap.add_argument("--up", default="-y")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for name in args.scenes.split(","):
        original = read(args.dir / f"{name}.ply")
        cams = orbit_cameras(original, views=args.views, size=args.size, up=args.up)
        ref = [r.image for r in render_views(original, cams)]
        for keep in args.keeps.split(","):
            merged = read(args.dir / f"{name}-merged-{keep}.ply")
            for steps in (int(s) for s in args.steps.split(",")):
                t0 = time.perf_counter()
                out = (
                    refit(original, merged, up=args.up, options=RefitOptions(steps=steps))
                    if steps
                    else merged
                )
                seconds = time.perf_counter() - t0
                imgs = [r.image for r in render_views(out, cams)]
                value = float(np.mean([psnr(a, b) for a, b in zip(ref, imgs, strict=True)]))
                row = {"scene": name, "keep": keep, "steps": steps, "psnr": value, "seconds": seconds}
                rows.append(row)
                print(f"| {name} | {keep} | {steps} | {value:.2f} | {seconds:.1f} |", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0 if all(math.isfinite(r["psnr"]) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
