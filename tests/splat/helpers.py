"""Comparisons of decoded splats against their source, within a format's quantisation error."""

from __future__ import annotations

import numpy as np

from foto3d.libs.splat.model import Splat, normalize_quats, sigmoid


def match_order(ref: Splat, got: Splat) -> Splat:
    """``got`` reordered to ``ref``'s order (formats like compressed PLY sort), by nearest centre
    and colour: colour tells apart the rare pairs of gaussians at almost the same place."""
    assert ref.count == got.count
    fr = np.concatenate([ref.means, ref.sh0 * 0.02], axis=1)
    fg = np.concatenate([got.means, got.sh0 * 0.02], axis=1)
    idx = np.empty(got.count, np.int64)
    for start in range(0, got.count, 512):
        d = ((fg[start : start + 512, None, :] - fr[None, :, :]) ** 2).sum(axis=2)
        idx[start : start + 512] = d.argmin(axis=1)
    assert len(np.unique(idx)) == got.count, "decoded gaussians do not map one-to-one onto the source"
    order = np.empty_like(idx)
    order[idx] = np.arange(got.count)
    return got.subset(order)


def quat_error(a: np.ndarray, b: np.ndarray) -> float:
    """Largest per-component difference of unit quaternions, ignoring the q / -q ambiguity."""
    qa, qb = normalize_quats(a), normalize_quats(b)
    return float(np.minimum(np.abs(qa - qb).max(axis=1), np.abs(qa + qb).max(axis=1)).max())


def assert_close(
    ref: Splat,
    got: Splat,
    *,
    means: float,
    scales: float,
    alpha: float,
    sh0: float,
    quats: float,
    sh_rest: float | None,
) -> None:
    assert got.count == ref.count
    errors = {
        "means": float(np.abs(got.means - ref.means).max()),
        "scales": float(np.abs(got.scales - ref.scales).max()),
        "alpha": float(np.abs(sigmoid(got.opacities) - sigmoid(ref.opacities)).max()),
        "sh0": float(np.abs(got.sh0 - ref.sh0).max()),
        "quats": quat_error(ref.quats, got.quats),
    }
    limits = {"means": means, "scales": scales, "alpha": alpha, "sh0": sh0, "quats": quats}
    if sh_rest is not None:
        assert got.shN.shape == ref.shN.shape
        errors["sh_rest"] = float(np.abs(got.shN - ref.shN).max()) if ref.shN.size else 0.0
        limits["sh_rest"] = sh_rest
    over = {k: (errors[k], limits[k]) for k in limits if errors[k] > limits[k]}
    assert not over, f"errors over the documented limits (error, limit): {over}"
