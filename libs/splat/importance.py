"""How much each gaussian matters to the picture: the score pruning sorts by.

Methods (higher = keep):

- ``opacity``: sigmoid(opacity). Cheap, ignores size.
- ``volume``: opacity x volume (sigmoid(opacity) x prod(exp(scales))), the classic prune score.
  Volume grows with the cube of size, so large faint blobs can outrank small opaque detail.
- ``area``: opacity x projected area (product of the two largest axes): what a splat covers on
  screen from a typical view. Needs no rendering; the default when no cameras are given and
  rendering is not asked for.
- ``views``: LightGaussian's global significance: the blending weight (alpha x transmittance) each
  gaussian contributes, summed over every pixel of every view. With training cameras this is the
  paper's score; without them orbit cameras around the robust bounds stand in (view-independent).
  Occluded gaussians score zero even when large and opaque, which the cheap scores cannot see.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from foto3d.libs.splat.model import Splat, sigmoid

if TYPE_CHECKING:
    from foto3d.libs.splat.cameras import Camera

METHODS = ("opacity", "volume", "area", "views")
F32 = npt.NDArray[np.float32]


def opacity_score(splat: Splat) -> F32:
    return sigmoid(splat.opacities)


def _scaled(log_opacity_times_size: npt.NDArray[np.float64]) -> F32:
    """exp() of log scores shifted so the largest is 1: no overflow, no underflow to ties."""
    v = log_opacity_times_size
    out: F32 = np.exp(v - (v.max() if v.size else 0.0)).astype(np.float32)
    return out


def _log_opacity(splat: Splat) -> npt.NDArray[np.float64]:
    return np.log(np.maximum(sigmoid(splat.opacities).astype(np.float64), 1e-30))


def volume_score(splat: Splat) -> F32:
    """sigmoid(opacity) x volume; computed in log space so tiny volumes do not underflow to ties."""
    log_v = splat.scales.astype(np.float64).sum(axis=1)
    return _scaled(_log_opacity(splat) + log_v)


def area_score(splat: Splat) -> F32:
    """sigmoid(opacity) x product of the two largest linear scales."""
    s = np.sort(splat.scales.astype(np.float64), axis=1)
    log_a = s[:, 1] + s[:, 2]
    return _scaled(_log_opacity(splat) + log_a)


def view_score(
    splat: Splat,
    cameras: Sequence[Camera] | None = None,
    *,
    views: int = 12,
    size: int = 128,
    up: str = "z",
    progress: Callable[[int, int], None] | None = None,
) -> F32:
    """Global significance: summed blending weight over ``cameras`` (orbit views if None).

    Ties (gaussians no view sees) are broken by :func:`area_score`, scaled far below one
    pixel's weight, so pruning among unseen gaussians still drops the least important first.
    """
    from foto3d.libs.splat.quality import orbit_cameras, require_torch

    require_torch()
    from foto3d.libs.splat.render import render_views

    cams = list(cameras) if cameras is not None else orbit_cameras(splat, views=views, size=size, up=up)
    total = np.zeros(splat.count, np.float64)
    for r in render_views(splat, cams, contribution=True, progress=progress):
        assert r.contribution is not None
        total += r.contribution
    return (total + 1e-6 * area_score(splat)).astype(np.float32)


def importance(
    splat: Splat,
    method: str = "area",
    *,
    cameras: Sequence[Camera] | None = None,
    up: str = "z",
    progress: Callable[[int, int], None] | None = None,
) -> F32:
    """Score per gaussian by ``method`` (see module doc); ValueError for an unknown method.
    ``up`` orients the orbit cameras ``views`` uses when no ``cameras`` are given."""
    if method == "opacity":
        return opacity_score(splat)
    if method == "volume":
        return volume_score(splat)
    if method == "area":
        return area_score(splat)
    if method == "views":
        return view_score(splat, cameras, up=up, progress=progress)
    raise ValueError(f"unknown importance method {method!r} (choose from {', '.join(METHODS)})")
