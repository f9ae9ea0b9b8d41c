"""Measured quality: orbit cameras around a splat, PSNR and SSIM between renders.

``compare_splats(a, b)`` renders both splats from the same orbit views (placed around ``a``'s
robust bounds) with the CPU rasterizer in :mod:`.render` and reports PSNR and SSIM per view and
their means. PSNR/SSIM themselves are numpy only; rendering needs torch (the ``quality`` extra).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy.ndimage import correlate1d

from foto3d.libs.splat.cameras import Camera
from foto3d.libs.splat.coords import UP_AXES
from foto3d.libs.splat.model import Splat

F32 = npt.NDArray[np.float32]

#: Elevations (degrees) the orbit views cycle through, so tops and undersides are seen too.
ORBIT_ELEVATIONS = (15.0, -20.0, 40.0, 0.0, -45.0, 60.0)

INSTALL_HINT = "quality rendering needs torch: pip install 'foto3d[quality]' (CPU torch is enough)"


class QualityUnavailable(RuntimeError):
    """torch is not installed, so nothing can be rendered."""


def require_torch() -> None:
    """Raise QualityUnavailable with an install hint when torch cannot be imported."""
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        raise QualityUnavailable(INSTALL_HINT) from exc


def robust_bounds(means: npt.ArrayLike, lo: float = 1.0, hi: float = 99.0) -> tuple[F32, F32]:
    """Per-axis percentile box of the centres: ignores the few far-away floaters."""
    m = np.asarray(means, dtype=np.float32)
    if m.shape[0] == 0:
        z = np.zeros(3, np.float32)
        return z, z
    sample = m if m.shape[0] <= 200_000 else m[:: m.shape[0] // 200_000]
    b = np.percentile(sample, [lo, hi], axis=0).astype(np.float32)
    return b[0], b[1]


def look_at(eye: npt.ArrayLike, target: npt.ArrayLike, up: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """World-to-camera matrix (OpenCV axes: x right, y down, z forward) looking at ``target``."""
    e, t, u = (np.asarray(v, np.float64) for v in (eye, target, up))
    f = t - e
    f /= np.linalg.norm(f)
    r = np.cross(f, u)
    if np.linalg.norm(r) < 1e-9:  # looking straight along up: any right vector will do
        r = np.cross(f, np.roll(u, 1))
    r /= np.linalg.norm(r)
    d = np.cross(f, r)
    rot = np.stack([r, d, f])  # rows: camera axes in world coordinates
    vm = np.eye(4)
    vm[:3, :3] = rot
    vm[:3, 3] = -rot @ e
    return vm


def orbit_cameras(
    splat: Splat, *, views: int = 8, size: int = 128, fov_deg: float = 50.0, up: str = "z"
) -> list[Camera]:
    """``views`` cameras evenly spaced in azimuth around the robust bounds, elevations varied,
    each framing the bounds' enclosing sphere. ``up`` is the scene's up axis (nerfstudio: z)."""
    if views < 1:
        raise ValueError("need at least one view")
    if up not in UP_AXES:
        raise ValueError(f"up must be one of {', '.join(UP_AXES)}, got {up!r}")
    lo, hi = robust_bounds(splat.means)
    centre = (lo.astype(np.float64) + hi) / 2
    radius = max(float(np.linalg.norm(hi.astype(np.float64) - lo)) / 2, 1e-3)
    half = math.radians(fov_deg) / 2
    dist = radius / math.sin(half) * 1.02
    focal = 0.5 * size / math.tan(half)
    u = np.asarray(UP_AXES[up])
    # Two horizontal axes perpendicular to up.
    a1 = np.cross(u, [1.0, 0.0, 0.0] if abs(u[0]) < 0.9 else [0.0, 1.0, 0.0])
    a1 /= np.linalg.norm(a1)
    a2 = np.cross(u, a1)
    cams = []
    for i in range(views):
        az = 2 * math.pi * i / views
        el = math.radians(ORBIT_ELEVATIONS[i % len(ORBIT_ELEVATIONS)])
        direction = math.cos(el) * (math.cos(az) * a1 + math.sin(az) * a2) + math.sin(el) * u
        eye = centre + dist * direction
        cams.append(Camera(look_at(eye, centre, u), focal, focal, size / 2, size / 2, size, size))
    return cams


# ---- image metrics ------------------------------------------------------------------------------


def psnr(a: npt.ArrayLike, b: npt.ArrayLike, peak: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB; ``inf`` for identical images."""
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if x.shape != y.shape:
        raise ValueError(f"images differ in shape: {x.shape} vs {y.shape}")
    mse = float(np.mean((x - y) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(peak * peak / mse)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> npt.NDArray[np.float64]:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(x * x) / (2 * sigma * sigma))
    return np.asarray(g / g.sum())


def ssim(a: npt.ArrayLike, b: npt.ArrayLike, peak: float = 1.0) -> float:
    """Structural similarity (Wang et al. 2004): 11-tap Gaussian window (sigma 1.5), K1=0.01,
    K2=0.03, statistics over the fully covered ("valid") area, averaged over colour channels."""
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if x.shape != y.shape:
        raise ValueError(f"images differ in shape: {x.shape} vs {y.shape}")
    if x.ndim == 2:
        x, y = x[..., None], y[..., None]
    win = _gaussian_window()
    pad = len(win) // 2
    if x.shape[0] <= 2 * pad or x.shape[1] <= 2 * pad:
        raise ValueError(f"image {x.shape[1]}x{x.shape[0]} is too small for an 11-pixel SSIM window")

    def blur(img: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        out = correlate1d(correlate1d(img, win, axis=0, mode="constant"), win, axis=1, mode="constant")
        return np.asarray(out[pad:-pad, pad:-pad])

    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    scores = []
    for ch in range(x.shape[2]):
        xc, yc = x[..., ch], y[..., ch]
        mx, my = blur(xc), blur(yc)
        sxx = blur(xc * xc) - mx * mx
        syy = blur(yc * yc) - my * my
        sxy = blur(xc * yc) - mx * my
        num = (2 * mx * my + c1) * (2 * sxy + c2)
        den = (mx * mx + my * my + c1) * (sxx + syy + c2)
        scores.append(float(np.mean(num / den)))
    return float(np.mean(scores))


# ---- comparing two splats -----------------------------------------------------------------------


@dataclass
class ViewScore:
    view: int
    psnr: float
    ssim: float


@dataclass
class QualityReport:
    """PSNR (dB) and SSIM of ``b``'s renders against ``a``'s, per view and averaged."""

    views: list[ViewScore] = field(default_factory=list)
    size: int = 0
    seconds: float = 0.0

    @property
    def psnr(self) -> float:
        """Mean PSNR over views (inf when every view is identical)."""
        vals = [v.psnr for v in self.views]
        return float(np.mean(vals)) if vals else math.nan

    @property
    def ssim(self) -> float:
        return float(np.mean([v.ssim for v in self.views])) if self.views else math.nan

    def to_dict(self) -> dict[str, object]:
        def num(x: float) -> float | str:
            return x if math.isfinite(x) else str(x)

        return {
            "psnr": num(self.psnr),
            "ssim": self.ssim,
            "size": self.size,
            "seconds": round(self.seconds, 3),
            "views": [{"view": v.view, "psnr": num(v.psnr), "ssim": v.ssim} for v in self.views],
        }


def score_images(ref: Sequence[F32], test: Sequence[F32]) -> list[ViewScore]:
    """PSNR and SSIM of each test image against its reference."""
    return [ViewScore(i, psnr(r, t), ssim(r, t)) for i, (r, t) in enumerate(zip(ref, test, strict=True))]


def render_images(
    splat: Splat, cams: Sequence[Camera], progress: Callable[[int, int], None] | None = None
) -> list[F32]:
    """Images of ``splat`` from ``cams`` (black background)."""
    require_torch()
    from foto3d.libs.splat.render import render_views

    return [r.image for r in render_views(splat, list(cams), progress=progress)]


def compare_splats(
    a: Splat,
    b: Splat,
    views: int = 8,
    size: int = 128,
    *,
    up: str = "z",
    cameras: Sequence[Camera] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> QualityReport:
    """Render ``a`` (the reference) and ``b`` from the same views and score ``b`` against ``a``.

    The views are orbit cameras around ``a``'s robust bounds unless ``cameras`` are given.
    """
    require_torch()
    t0 = time.perf_counter()
    cams = list(cameras) if cameras is not None else orbit_cameras(a, views=views, size=size, up=up)
    total = 2 * len(cams)

    def step(offset: int) -> Callable[[int, int], None] | None:
        if progress is None:
            return None
        cb = progress
        return lambda done, _n: cb(offset + done, total)

    ref = render_images(a, cams, step(0))
    test = render_images(b, cams, step(len(cams)))
    return QualityReport(
        views=score_images(ref, test), size=cams[0].width if cams else size, seconds=time.perf_counter() - t0
    )
