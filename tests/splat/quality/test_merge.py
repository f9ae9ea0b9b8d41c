"""Merging neighbours: moments kept, counts exact, and better pictures than pruning."""

from __future__ import annotations

import numpy as np
import pytest

from foto3d.libs.splat.coords import quat_to_matrix
from foto3d.libs.splat.merge import merge_to_count
from foto3d.libs.splat.model import Splat, logit, sigmoid
from foto3d.libs.splat.reduce import reduce_splat
from foto3d.libs.splat.synthetic import synthetic_object


def _cov(s: Splat) -> np.ndarray:
    r = quat_to_matrix(s.quats)
    v = np.exp(2.0 * s.scales.astype(np.float64))
    out: np.ndarray = np.einsum("nij,nj,nkj->nik", r, v, r)
    return out


def test_two_gaussians_merge_into_their_moments() -> None:
    means = np.array([[0.0, 0.0, 0.0], [0.1, 0.0, 0.0]])
    s = Splat(
        means=means,
        scales=np.log(np.full((2, 3), 0.05)),
        quats=[[1, 0, 0, 0], [1, 0, 0, 0]],
        opacities=logit([0.5, 0.5]),
        sh0=[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]],
    )
    out = merge_to_count(s, 1)
    assert out.count == 1
    assert np.allclose(out.means[0], [0.05, 0.0, 0.0], atol=1e-6)
    cov = _cov(out)[0]
    # equal weights: the mixture's variance along x is 0.05^2 + 0.05^2 (half the spread squared)
    assert cov[0, 0] == pytest.approx(0.05**2 + 0.05**2, rel=1e-4)
    assert cov[1, 1] == pytest.approx(0.05**2, rel=1e-4)
    assert np.allclose(out.sh0[0], [0.5, 0.5, 0.0], atol=1e-6)
    assert float(sigmoid(out.opacities)[0]) == pytest.approx(0.75, abs=1e-4)  # 1 - (1 - .5)^2


def test_reaches_the_exact_count_and_merges_nearest_first() -> None:
    rng = np.random.default_rng(0)
    # 50 tight pairs far apart from each other: halving must merge each pair, not across pairs.
    centres = rng.uniform(-10, 10, size=(50, 3))
    means = np.repeat(centres, 2, axis=0) + rng.normal(scale=0.01, size=(100, 3))
    s = Splat(
        means=means,
        scales=np.log(np.full((100, 3), 0.02)),
        quats=np.tile([1.0, 0, 0, 0], (100, 1)),
        opacities=np.zeros(100),
        sh0=np.zeros((100, 3)),
    )
    out = merge_to_count(s, 50)
    assert out.count == 50
    dist = np.linalg.norm(out.means[:, None, :] - centres[None, :, :], axis=2).min(axis=1)
    assert dist.max() < 0.05
    assert merge_to_count(s, 7).count == 7
    assert merge_to_count(s, 200).count == 100


def test_merge_is_the_default_and_reported(scene: Splat) -> None:
    out, rep = reduce_splat(scene, keep=0.25)
    assert out.count == round(0.25 * scene.count)
    assert rep.removed == {"merged": scene.count - out.count}
    assert rep.importance_method == "merge" and "merge" in rep.timings
    with pytest.raises(ValueError, match="strategy"):
        reduce_splat(scene, strategy="shuffle")


def test_merging_keeps_more_of_the_picture_than_pruning() -> None:
    from foto3d.libs.splat.quality import compare_splats

    s = synthetic_object(6000, sh_degree=0, seed=5)
    merged, _ = reduce_splat(s, keep=0.25)
    pruned, _ = reduce_splat(s, keep=0.25, strategy="prune")
    q_merge = compare_splats(s, merged, views=4, size=64)
    q_prune = compare_splats(s, pruned, views=4, size=64)
    assert q_merge.psnr > q_prune.psnr
