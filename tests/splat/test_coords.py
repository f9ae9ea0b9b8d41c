"""Rotating splats (centres, orientations and SH) and the per-format up axes."""

from __future__ import annotations

import numpy as np
import pytest

from foto3d.libs.splat import coords
from foto3d.libs.splat.model import Splat
from foto3d.libs.splat.synthetic import synthetic_object


def _view_colour(s: Splat, d: np.ndarray) -> np.ndarray:
    out = np.zeros((s.count, 3))
    k = 0
    for band in (1, 2, 3):
        y = coords._sh_basis(band, d[None, :])[0]
        out += np.einsum("k,nkc->nc", y, s.shN[:, k : k + 2 * band + 1].astype(np.float64))
        k += 2 * band + 1
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rotation_keeps_appearance(seed: int) -> None:
    rng = np.random.default_rng(seed)
    s = synthetic_object(50, sh_degree=3, seed=seed)
    r = coords.quat_to_matrix(rng.normal(size=4))
    t = coords.rotate(s, r)
    d = rng.normal(size=3)
    d /= np.linalg.norm(d)
    # the colour seen from direction R·d after turning equals the colour seen from d before
    assert np.abs(_view_colour(t, r @ d) - _view_colour(s, d)).max() < 1e-5
    assert np.allclose(t.means, s.means @ r.T, atol=1e-5)
    m_before = coords.quat_to_matrix(s.quats)
    m_after = coords.quat_to_matrix(t.quats)
    assert np.allclose(m_after, r @ m_before, atol=1e-5)


def test_up_axis_rotations() -> None:
    for src in coords.UP_AXES:
        for dst in coords.UP_AXES:
            r = coords.rotation_between(src, dst)
            assert np.allclose(r @ coords.UP_AXES[src], coords.UP_AXES[dst])
            assert np.isclose(np.linalg.det(r), 1.0)
    s = synthetic_object(200, seed=1)
    back = coords.reorient(coords.reorient(s, "z", "-y"), "-y", "z")
    assert back.allclose(s, atol=1e-5)
    with pytest.raises(ValueError):
        coords.reorient(s, "up", "z")


def test_matrix_quat_round_trip() -> None:
    q = np.random.default_rng(3).normal(size=(100, 4))
    m = coords.quat_to_matrix(q)
    assert np.allclose(coords.quat_to_matrix(coords.matrix_to_quat(m)), m, atol=1e-9)
