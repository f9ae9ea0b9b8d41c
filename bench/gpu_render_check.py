"""Cross-check the CPU quality renderer against gsplat's CUDA rasterizer, on a GPU host.

Two questions, answered on the same synthetic object scene:

1. Does our CPU renderer (``libs/splat/render.py``, used for every quality number) draw the
   same images as gsplat's CUDA rasterizer, the renderer nerfstudio trains with? Reported as
   PSNR between the two renders of each view (higher is closer; > 40 dB is visually identical).
2. What does a reduction cost in quality when measured at full resolution on many views, not
   only at the CPU's 128-256 px? PSNR/SSIM of the reduced splat (and of its .spz web file)
   against the original, rendered by gsplat on the GPU.

Needs torch with CUDA and ``gsplat`` (JIT-compiles its kernels on first use). Run:

    python bench/gpu_render_check.py --n 300000 --views 16 --size 512
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from foto3d.libs.splat import read, write
from foto3d.libs.splat.cameras import Camera
from foto3d.libs.splat.model import Splat
from foto3d.libs.splat.quality import orbit_cameras, psnr, ssim
from foto3d.libs.splat.reduce import reduce_splat
from foto3d.libs.splat.synthetic import synthetic_object

F32 = npt.NDArray[np.float32]


def gsplat_render(splat: Splat, cams: list[Camera]) -> list[F32]:
    """Render with gsplat's CUDA rasterizer (SH colours + 0.5, clamped, black background)."""
    import torch
    from gsplat import rasterization

    dev = torch.device("cuda")
    means = torch.from_numpy(np.ascontiguousarray(splat.means)).to(dev)
    quats = torch.from_numpy(np.ascontiguousarray(splat.quats)).to(dev)
    scales = torch.exp(torch.from_numpy(np.ascontiguousarray(splat.scales))).to(dev)
    opac = torch.sigmoid(torch.from_numpy(np.ascontiguousarray(splat.opacities))).to(dev)
    deg = splat.sh_degree
    k = (deg + 1) ** 2 - 1
    sh = [torch.from_numpy(np.ascontiguousarray(splat.sh0))[:, None, :]]
    if k:
        sh.append(torch.from_numpy(np.ascontiguousarray(splat.shN[:, :k, :])))
    colors = torch.cat(sh, dim=1).to(dev)
    out: list[F32] = []
    for cam in cams:
        viewmat = torch.tensor(cam.viewmat, dtype=torch.float32, device=dev)[None]
        K = torch.tensor(
            [[cam.fx, 0.0, cam.cx], [0.0, cam.fy, cam.cy], [0.0, 0.0, 1.0]], dtype=torch.float32, device=dev
        )[None]
        img, _alpha, _meta = rasterization(
            means, quats, scales, opac, colors, viewmat, K, cam.width, cam.height, sh_degree=deg, eps2d=0.3
        )
        out.append(img[0].clamp(0.0, 1.0).float().cpu().numpy())
    torch.cuda.synchronize()
    return out


def cpu_render(splat: Splat, cams: list[Camera]) -> list[F32]:
    from foto3d.libs.splat.render import render_views

    return [np.clip(r.image, 0.0, 1.0) for r in render_views(splat, cams)]


def mean_scores(ref: list[F32], test: list[F32]) -> tuple[float, float, float]:
    ps = [psnr(a, b) for a, b in zip(ref, test, strict=True)]
    ss = [ssim(a, b) for a, b in zip(ref, test, strict=True)]
    finite = [p for p in ps if math.isfinite(p)]
    return float(np.mean(finite)) if finite else math.inf, float(min(ps)), float(np.mean(ss))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=300_000, help="gaussians in the synthetic scene")
    ap.add_argument("--views", type=int, default=16)
    ap.add_argument("--size", type=int, default=512, help="image size for the GPU quality figures")
    ap.add_argument("--cpu-size", type=int, default=192, help="image size for the CPU-vs-GPU agreement check")
    ap.add_argument("--cpu-views", type=int, default=4)
    ap.add_argument("--keep", type=float, default=0.5)
    ap.add_argument("--method", default="area", help="importance method for reduce_splat (area is fastest)")
    args = ap.parse_args()

    t0 = time.perf_counter()
    scene = synthetic_object(args.n, sh_degree=3, seed=0)
    print(f"scene: {scene.count} gaussians, SH {scene.sh_degree} ({time.perf_counter() - t0:.1f}s)")

    t0 = time.perf_counter()
    gsplat_render(scene, orbit_cameras(scene, views=1, size=64))  # JIT build + warm-up
    print(f"gsplat ready ({time.perf_counter() - t0:.1f}s incl. kernel build)")

    # 1. CPU renderer vs gsplat CUDA, same views.
    cams = orbit_cameras(scene, views=args.cpu_views, size=args.cpu_size)
    t0 = time.perf_counter()
    ref = gsplat_render(scene, cams)
    t_gpu = time.perf_counter() - t0
    t0 = time.perf_counter()
    ours = cpu_render(scene, cams)
    t_cpu = time.perf_counter() - t0
    p_mean, p_min, s_mean = mean_scores(ref, ours)
    print(
        f"CPU renderer vs gsplat CUDA ({args.cpu_views} views, {args.cpu_size}px): "
        f"PSNR mean {p_mean:.2f} dB (min {p_min:.2f}), SSIM {s_mean:.4f}; "
        f"time CPU {t_cpu:.1f}s vs GPU {t_gpu:.2f}s"
    )

    # 2. Reduction quality at full resolution, rendered on the GPU.
    reduced, report = reduce_splat(scene, keep=args.keep, importance_method=args.method)
    cams = orbit_cameras(scene, views=args.views, size=args.size)
    ref = gsplat_render(scene, cams)
    red = gsplat_render(reduced, cams)
    with tempfile.TemporaryDirectory() as tmp:
        ply = Path(tmp) / "scene.ply"
        spz = Path(tmp) / "reduced.spz"
        write(scene, ply)
        write(reduced, spz)
        web = read(spz)
        ratio = ply.stat().st_size / spz.stat().st_size
        red_web = gsplat_render(web, cams)
    for label, imgs in (("reduced (float)", red), ("reduced .spz", red_web)):
        p_mean, p_min, s_mean = mean_scores(ref, imgs)
        print(
            f"{label:16s} keep {args.keep:.2f} ({reduced.count} gaussians), {args.views} views "
            f"{args.size}px: PSNR mean {p_mean:.2f} dB (min {p_min:.2f}), SSIM {s_mean:.4f}"
        )
    print(f".ply -> reduced .spz size ratio: {ratio:.1f}x")
    print(f"reduce report: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
