"""reduce_splat: what it keeps, what it removes and why, and what it costs in quality."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from foto3d.libs.splat import read, write
from foto3d.libs.splat.cameras import load_cameras
from foto3d.libs.splat.floaters import find_floaters
from foto3d.libs.splat.importance import importance
from foto3d.libs.splat.model import Splat, logit
from foto3d.libs.splat.quality import orbit_cameras
from foto3d.libs.splat.reduce import reduce_splat

from .conftest import random_splat


def _has_torch() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def kept_mask(src: Splat, out: Splat) -> np.ndarray:
    """Which of ``src``'s gaussians are in ``out`` (matched by their full centre)."""
    rows = {m.tobytes() for m in out.means}
    return np.array([m.tobytes() in rows for m in src.means])


needs_torch = pytest.mark.skipif(not _has_torch(), reason="torch (the 'quality' extra) is not installed")


def test_keeps_the_requested_fraction_or_count(scene: Splat) -> None:
    out, rep = reduce_splat(scene, keep=0.3, importance_method="area", strategy="prune")
    assert out.count == rep.count_after == round(0.3 * scene.count)
    assert rep.removed == {"low_importance": scene.count - out.count}
    out, rep = reduce_splat(scene, count=1234, importance_method="area", strategy="prune")
    assert out.count == 1234
    out, rep = reduce_splat(scene, keep=None, sh_degree=1)
    assert out.count == scene.count and rep.removed == {}


def test_removes_the_least_important_first() -> None:
    s = random_splat(1000, seed=4, sh_degree=0)
    score = importance(s, "area")
    out, _ = reduce_splat(s, keep=0.25, importance_method="area", strategy="prune")
    kept = kept_mask(s, out)
    assert kept.sum() == 250
    assert score[kept].min() >= score[~kept].max()
    # Kept gaussians stay in their original order.
    assert np.array_equal(s.means[kept], out.means)


def test_importance_scores_rank_as_documented() -> None:
    s = Splat(
        means=np.zeros((3, 3)),
        scales=np.log([[0.1, 0.1, 0.1], [0.1, 0.1, 0.001], [0.01, 0.01, 0.01]]),
        quats=np.tile([1.0, 0, 0, 0], (3, 1)),
        opacities=logit([0.5, 0.5, 0.9]),
        sh0=np.zeros((3, 3)),
    )
    vol = importance(s, "volume")
    area = importance(s, "area")
    assert vol[0] > vol[1] and vol[0] > vol[2]
    # A flat disc covers as much screen as a ball of the same radius.
    assert area[1] == pytest.approx(area[0], rel=1e-5)
    assert importance(s, "opacity").argmax() == 2
    with pytest.raises(ValueError, match="unknown importance"):
        importance(s, "bogus")


def test_min_opacity_and_invalid_rows() -> None:
    s = random_splat(500, seed=5, sh_degree=1)
    s.opacities[:10] = logit(np.full(10, 0.01))
    s.means[10] = np.nan
    out, rep = reduce_splat(s, keep=None, min_opacity=0.05)
    assert rep.removed["invalid"] == 1
    assert rep.removed["low_opacity"] >= 10
    assert np.isfinite(out.means).all()
    assert (1 / (1 + np.exp(-out.opacities)) >= 0.05).all()


def test_floaters_are_removed_with_reasons(scene: Splat) -> None:
    rng = np.random.default_rng(7)
    far = random_splat(30, seed=8)
    far.means = (rng.normal(0, 1, (30, 3)) * 0.05 + [40.0, 0.0, 0.0]).astype(np.float32)  # a clump far away
    lonely = random_splat(5, seed=9)
    lonely.means = np.array(
        [[0, 0, 1.6], [0.0, 1.4, 0.2], [1.3, 0.5, 0.8], [-1.2, -0.9, 1.5], [0.9, -1.1, 1.3]], np.float32
    )
    blob = random_splat(3, seed=10)
    blob.means = np.array([[0.0, 0.0, 0.5]] * 3)
    blob.scales = np.log(np.full((3, 3), 0.5, np.float32))
    blob.opacities = logit(np.full(3, 0.02))
    s = Splat.concat([scene, far, lonely, blob])
    masks = find_floaters(s)
    n = scene.count
    assert masks["outside_bounds"][n : n + 30].all()
    assert masks["isolated"][n + 30 : n + 35].all()
    assert masks["faint_blob"][n + 35 :].all()
    out, rep = reduce_splat(s, keep=None, remove_floaters=True)
    assert set(rep.removed) <= {"outside_bounds", "isolated", "faint_blob"}
    assert not kept_mask(s, out)[n:].any()
    # The object itself survives: the scene's own floater shell may go, the surfaces stay.
    assert out.count > 0.9 * scene.count


def test_sh_degree_lowered_and_round_trip(tmp_path: Path, scene: Splat) -> None:
    out, rep = reduce_splat(scene, keep=0.5, sh_degree=1, importance_method="area", strategy="prune")
    assert (rep.sh_degree_before, rep.sh_degree_after) == (3, 1)
    assert out.shN.shape == (out.count, 3, 3)
    np.testing.assert_array_equal(out.shN, scene.shN[kept_mask(scene, out)][:, :3])
    path = tmp_path / "reduced.ply"
    write(out, path)
    assert read(path).allclose(out)
    # Asking for a higher degree than the input has changes nothing.
    same, rep = reduce_splat(out, keep=None, sh_degree=3)
    assert same.sh_degree == 1 and rep.sh_degree_after == 1


def test_bad_options_are_refused(scene: Splat) -> None:
    for kw, msg in (
        ({"keep": 0.0}, "keep"),
        ({"keep": 1.5}, "keep"),
        ({"count": -1}, "count"),
        ({"sh_degree": 4}, "SH degree"),
        ({"min_opacity": 1.0}, "opacity"),
        ({"importance_method": "magic"}, "importance"),
        ({"strategy": "magic"}, "strategy"),
        ({"refit_steps": -1}, "refit"),
    ):
        with pytest.raises(ValueError, match=msg):
            reduce_splat(scene, **kw)


@needs_torch
def test_half_the_gaussians_costs_little_quality(scene: Splat) -> None:
    from foto3d.libs.splat.quality import compare_splats

    out, rep = reduce_splat(scene, keep=0.5, importance_method="views", strategy="prune")
    assert rep.importance_method == "views"
    q = compare_splats(scene, out, views=8, size=96)
    assert len(q.views) == 8
    assert q.psnr > 38.0 and q.ssim > 0.98, q.to_dict()
    # Keeping the *least* important half instead must be visibly worse: the score matters.
    worst = scene.subset(~kept_mask(scene, out))
    assert compare_splats(scene, worst, views=8, size=96).psnr < q.psnr - 10
    # The default without cameras (opacity x area) must do about as well.
    area, rep = reduce_splat(scene, keep=0.5, strategy="prune")
    assert rep.importance_method == "area"
    assert compare_splats(scene, area, views=8, size=96).psnr > 38.0


@needs_torch
def test_training_cameras_from_transforms_json(tmp_path: Path, scene: Splat) -> None:
    cams = orbit_cameras(scene, views=4, size=64)
    gl = np.diag([1.0, -1.0, -1.0, 1.0])
    frames = [{"transform_matrix": (np.linalg.inv(c.viewmat) @ gl).tolist()} for c in cams]
    doc = {"fl_x": cams[0].fx, "fl_y": cams[0].fy, "cx": 32, "cy": 32, "w": 64, "h": 64, "frames": frames}
    (tmp_path / "transforms.json").write_text(json.dumps(doc))
    loaded = load_cameras(tmp_path)
    assert len(loaded) == 4
    for a, b in zip(cams, loaded, strict=True):
        np.testing.assert_allclose(a.viewmat, b.viewmat, atol=1e-9)
    out, rep = reduce_splat(scene, keep=0.5, cameras=tmp_path / "transforms.json", strategy="prune")
    assert rep.importance_method == "views" and out.count == scene.count // 2
