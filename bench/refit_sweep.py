"""How much the re-fit (``reduce --refit-steps``) adds to a merged splat, per scene, keep, step
count and learning-rate scale: the numbers the re-fit's defaults were chosen by.

For each scene ``NAME.ply`` in ``--dir`` and each keep K, merges to K (``reduce_splat``, the
default strategy), re-fits with each setting and prints the PSNR on the re-fit's held-out
checking views before and after, the PSNR over the benchmark's orbit views (which neither the
fitting nor the checking views include), the step kept, why it stopped and the seconds taken.
Needs torch only (no Node); the peer's figures for the same orbit views come from
``bench/bench_splat.py``.

Usage: python bench/refit_sweep.py --scenes guitar,biker --keeps 0.5,0.1 --steps 200
       [--lr-scales 1,2] [--seconds S] [--dir bench/out/scenes] [--views 8] [--size 128]
       [--up -y] [--threads 1] [--json FILE]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

from foto3d.libs.splat import read
from foto3d.libs.splat.cameras import Camera
from foto3d.libs.splat.model import Splat
from foto3d.libs.splat.quality import orbit_cameras, psnr
from foto3d.libs.splat.reduce import reduce_splat
from foto3d.libs.splat.refit import RefitOptions, refit
from foto3d.libs.splat.render import render_views

SCENES = Path(__file__).resolve().parent / "out" / "scenes"


def orbit_psnr(s: Splat, cams: list[Camera], ref: list[npt.NDArray[np.float32]]) -> float:
    """Mean PSNR of ``s``'s renders against ``ref`` from ``cams``."""
    imgs = [r.image for r in render_views(s, cams)]
    return float(np.mean([psnr(a, b) for a, b in zip(ref, imgs, strict=True)]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", type=Path, default=SCENES)
    ap.add_argument("--scenes", required=True)
    ap.add_argument("--keeps", default="0.5,0.25,0.1")
    ap.add_argument("--steps", default="200", help="step counts (most steps; checks may stop earlier)")
    ap.add_argument("--lr-scales", default="1", help="multipliers of every default learning rate")
    ap.add_argument("--seconds", type=float, default=None, help="time budget per re-fit")
    ap.add_argument("--views", type=int, default=8)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--up", default="-y")
    # One thread: on a shared machine torch's thread pool waits on busy cores (measured 20-50x slower).
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    base = RefitOptions()
    rows = []
    print(
        "| scene | keep | steps | lr x | check dB before | after | orbit dB before | after | kept step | stopped | s |"
    )
    for name in args.scenes.split(","):
        original = read(args.dir / f"{name}.ply")
        cams = orbit_cameras(original, views=args.views, size=args.size, up=args.up)
        ref = [r.image for r in render_views(original, cams)]

        for keep in (float(k) for k in args.keeps.split(",")):
            merged, _ = reduce_splat(original, keep=keep)
            before = orbit_psnr(merged, cams, ref)
            for steps in (int(s) for s in args.steps.split(",")):
                for scale in (float(x) for x in args.lr_scales.split(",")):
                    opt = dataclasses.replace(
                        base,
                        steps=steps,
                        seconds=args.seconds,
                        lr_opacity=base.lr_opacity * scale,
                        lr_color=base.lr_color * scale,
                        lr_sh=base.lr_sh * scale,
                        lr_scale=base.lr_scale * scale,
                        lr_mean=base.lr_mean * scale,
                    )
                    t0 = time.perf_counter()
                    res = refit(original, merged, up=args.up, options=opt)
                    seconds = time.perf_counter() - t0
                    after = orbit_psnr(res.splat, cams, ref)
                    row = {
                        "scene": name,
                        "keep": keep,
                        "steps": steps,
                        "lr_scale": scale,
                        "orbit_before": before,
                        "orbit_after": after,
                        "seconds": seconds,
                        **res.to_dict(),
                    }
                    rows.append(row)
                    print(
                        f"| {name} | {keep} | {steps} | {scale:g} | {res.psnr_before:.2f} | {res.psnr_after:.2f} "
                        f"| {before:.2f} | {after:.2f} | {res.best_step}/{res.steps} | {res.stopped} | {seconds:.0f} |",
                        flush=True,
                    )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0 if all(math.isfinite(r["orbit_after"]) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
