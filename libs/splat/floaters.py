"""Find floaters: gaussians that sit where the object is not, and that viewers see as specks or haze.

Three independent tests, each reported under its own reason:

- ``outside_bounds``: centre far outside the robust (1st-99th percentile) box, farther than
  ``margin`` box extents beyond it.
- ``isolated``: the mean distance to the ``k`` nearest centres exceeds ``isolation`` x the median
  of that distance over the whole splat (a k-d tree query; statistically sparse points).
- ``faint_blob``: large (largest axis above ``blob_size`` x the robust box diagonal) and nearly
  transparent (opacity below ``blob_opacity``): the fog training leaves around objects.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.spatial import cKDTree

from foto3d.libs.splat.model import Splat, sigmoid
from foto3d.libs.splat.quality import robust_bounds

Mask = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class FloaterOptions:
    margin: float = 0.5
    k: int = 8
    isolation: float = 8.0
    blob_size: float = 0.1
    blob_opacity: float = 0.1


def find_floaters(splat: Splat, opts: FloaterOptions | None = None) -> dict[str, Mask]:
    """A removal mask per reason (masks may overlap; the caller unions them)."""
    o = opts or FloaterOptions()
    n = splat.count
    out: dict[str, Mask] = {}
    if n == 0:
        return {r: np.zeros(0, bool) for r in ("outside_bounds", "isolated", "faint_blob")}
    lo, hi = robust_bounds(splat.means)
    ext = np.maximum(hi - lo, 1e-6)
    out["outside_bounds"] = ((splat.means < lo - o.margin * ext) | (splat.means > hi + o.margin * ext)).any(
        axis=1
    )
    if n > o.k:
        tree = cKDTree(splat.means)
        dist, _ = tree.query(splat.means, k=o.k + 1, workers=-1)
        mean_d = np.asarray(dist)[:, 1:].mean(axis=1)
        med = float(np.median(mean_d))
        out["isolated"] = mean_d > o.isolation * max(med, 1e-12)
    else:
        out["isolated"] = np.zeros(n, bool)
    diag = float(np.linalg.norm(ext))
    big = np.exp(splat.scales.max(axis=1)) > o.blob_size * diag
    out["faint_blob"] = big & (sigmoid(splat.opacities) < o.blob_opacity)
    return out
