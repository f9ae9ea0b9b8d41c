"""The CPU rasterizer against gsplat's pure-PyTorch reference math, and basic sanity."""

from __future__ import annotations

import numpy as np
import pytest

from foto3d.libs.splat.cameras import Camera
from foto3d.libs.splat.model import Splat, logit, rgb_to_sh0
from foto3d.libs.splat.quality import look_at, orbit_cameras

from .conftest import random_splat

torch = pytest.importorskip("torch", reason="torch (the 'quality' extra) is not installed")

from foto3d.libs.splat.render import SplatTensors, eval_sh, project, render  # noqa: E402

W, H = 48, 40


def _camera() -> Camera:
    return Camera(look_at([0.3, -0.2, -3.0], [0, 0, 0], [0, -1, 0]), 40.0, 42.0, 24.0, 20.0, W, H)


def test_projection_matches_gsplat_reference() -> None:
    ref = pytest.importorskip("gsplat.cuda._torch_impl", reason="gsplat is not installed")
    s = random_splat(300)
    cam = _camera()
    st = SplatTensors(s)
    mine = project(st.means, st.covars, cam)
    covars, _ = ref._quat_scale_to_covar_preci(
        torch.from_numpy(s.quats), torch.exp(torch.from_numpy(s.scales)), compute_preci=False
    )
    assert torch.allclose(covars, st.covars, atol=1e-6)
    k = torch.tensor([[cam.fx, 0, cam.cx], [0, cam.fy, cam.cy], [0, 0, 1.0]])
    radii, means2d, depths, conics, _ = ref._fully_fused_projection(
        st.means, covars, torch.from_numpy(cam.viewmat).float()[None], k[None], W, H
    )
    assert torch.equal(radii[0], mine.radii)
    seen = (radii[0] > 0).all(dim=1)
    assert seen.sum() > 100
    assert torch.allclose(means2d[0][seen], mine.means2d[seen], atol=1e-3)
    assert torch.allclose(depths[0], mine.depths, atol=1e-5)
    assert torch.allclose(conics[0][seen], mine.conics[seen], rtol=1e-4, atol=1e-5)


def test_spherical_harmonics_match_gsplat_reference() -> None:
    ref = pytest.importorskip("gsplat.cuda._torch_impl", reason="gsplat is not installed")
    gen = torch.Generator().manual_seed(0)
    coeffs = torch.randn(500, 16, 3, generator=gen)
    dirs = torch.nn.functional.normalize(torch.randn(500, 3, generator=gen), dim=-1)
    for degree in range(4):
        n = (degree + 1) ** 2
        want = ref._spherical_harmonics(degree, dirs, coeffs[:, :n])
        assert torch.allclose(eval_sh(coeffs[:, :n], dirs, degree), want, atol=1e-5)


def _naive_composite(s: Splat, cam: Camera) -> np.ndarray:
    """Per-pixel front-to-back blending, written as plainly as possible: the reference the
    tiled renderer must reproduce (same skip/stop rules as gsplat's kernel)."""
    st = SplatTensors(s)
    p = project(st.means, st.covars, cam)
    campos = torch.from_numpy(cam.position).float()
    dirs = torch.nn.functional.normalize(st.means - campos, dim=-1)
    col = torch.clamp(eval_sh(st.sh, dirs, st.sh_degree) + 0.5, min=0).numpy()
    vis = (p.radii > 0).all(dim=1).numpy()
    order = [i for i in np.argsort(p.depths.numpy(), kind="stable") if vis[i]]
    m2, cn, op = p.means2d.numpy(), p.conics.numpy(), st.opacities.numpy()
    img = np.zeros((H, W, 3))
    for y in range(H):
        for x in range(W):
            t, c = 1.0, np.zeros(3)
            for i in order:
                dx, dy = x + 0.5 - m2[i, 0], y + 0.5 - m2[i, 1]
                sigma = 0.5 * (cn[i, 0] * dx * dx + cn[i, 2] * dy * dy) + cn[i, 1] * dx * dy
                if sigma < 0:
                    continue
                a = min(0.999, op[i] * np.exp(-sigma))
                if a < 1 / 255:
                    continue
                if t * (1 - a) <= 1e-4:
                    break
                c += col[i] * a * t
                t *= 1 - a
            img[y, x] = c
    return np.clip(img, 0, 1)


def test_tiled_renderer_matches_plain_compositing() -> None:
    s = random_splat(120, seed=3)
    cam = _camera()
    out = render(SplatTensors(s), cam, contribution=True)
    want = _naive_composite(s, cam)
    assert out.image.shape == (H, W, 3)
    assert out.image.mean() > 0.05, "the scene should be visible"
    # Tiles only cull by the 3.33-sigma box, the plain loop by nothing: tiny tails may differ.
    np.testing.assert_allclose(out.image, want, atol=1e-4)
    # Each pixel's weights sum to its opacity, so contributions sum to the alpha image.
    assert out.contribution is not None
    assert out.contribution.sum() == pytest.approx(float(out.alpha.sum()), rel=1e-3)


def test_single_gaussian_lands_where_projected_with_its_colour() -> None:
    s = Splat(
        means=[[0.2, 0.0, 0.0]],
        scales=np.log([[0.05, 0.05, 0.05]]),
        quats=[[1.0, 0, 0, 0]],
        opacities=logit([0.99]),
        sh0=rgb_to_sh0([[0.9, 0.2, 0.1]]),
    )
    # Camera 2 units back along -z, looking at the origin, OpenCV axes (y down).
    vm = np.eye(4)
    vm[2, 3] = 2.0
    cam = Camera(vm, 100.0, 100.0, 32.0, 32.0, 64, 64)
    out = render(SplatTensors(s), cam, background=(0.0, 0.0, 1.0))
    # x = fx * 0.2 / 2 + cx = 42 -> pixel column 41.5..42.5
    y, x = np.unravel_index(np.argmax(out.alpha), out.alpha.shape)
    assert (int(y), int(x)) in {(31, 41), (31, 42), (32, 41), (32, 42)}
    a = float(out.alpha[int(y), int(x)])
    assert a > 0.9
    want = a * np.array([0.9, 0.2, 0.1]) + (1 - a) * np.array([0.0, 0.0, 1.0])
    np.testing.assert_allclose(out.image[int(y), int(x)], want, atol=1e-3)
    assert out.alpha[0, 0] == 0.0
    np.testing.assert_allclose(out.image[0, 0], [0.0, 0.0, 1.0])  # background shows


def test_orbit_views_see_the_object_from_all_sides(scene: Splat) -> None:
    cams = orbit_cameras(scene, views=8, size=64)
    assert len(cams) == 8
    st = SplatTensors(scene)
    covered = [float((render(st, c).alpha > 0.5).mean()) for c in cams]
    assert all(0.1 < c < 0.95 for c in covered), covered
    heights = {round(float(c.position[2]), 2) for c in cams}
    assert len(heights) >= 4, "elevations vary"
