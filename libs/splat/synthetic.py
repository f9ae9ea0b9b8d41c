"""A deterministic synthetic "product on a turntable" splat, for tests and benchmarks.

Real trained object scenes share a few traits that matter to compression and pruning, and this
scene has them: most gaussians are small and flat, lying on surfaces (so their shortest axis is the
surface normal); colours vary smoothly with a few sharp edges (a label, a checker print); opacity
is bimodal with many nearly transparent gaussians; view-dependent colour (SH) is small and decays
with degree; and a few percent are large, faint floaters far from the object. Z is up, as in
nerfstudio exports; the object sits on a disc at z = 0 and is about one unit tall.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from foto3d.libs.splat.coords import matrix_to_quat
from foto3d.libs.splat.model import SH_REST_COUNT, Splat, logit, rgb_to_sh0

F64 = npt.NDArray[np.float64]

#: Share of gaussians per part: vase-like body, box, turntable disc, floaters.
_PARTS = (0.55, 0.17, 0.25, 0.03)


def _frames(normals: F64) -> F64:
    """Rotation matrices whose third column is the normal (tangent frame per point)."""
    n = normals / np.linalg.norm(normals, axis=1, keepdims=True)
    helper = np.where(np.abs(n[:, 2:3]) < 0.9, [[0.0, 0.0, 1.0]], [[1.0, 0.0, 0.0]])
    t1 = np.cross(helper, n)
    t1 /= np.linalg.norm(t1, axis=1, keepdims=True)
    t2 = np.cross(n, t1)
    return np.stack([t1, t2, n], axis=2)


def _body(rng: np.random.Generator, n: int) -> tuple[F64, F64, F64]:
    """An ellipsoidal vase: points, normals, colours (a glaze that shifts with height, a label)."""
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    radii = np.array([0.28, 0.28, 0.45])
    centre = np.array([0.0, 0.0, 0.5])
    p = centre + d * radii
    normals = d / radii**2
    h = (p[:, 2] - 0.05) / 0.9
    ang = np.arctan2(p[:, 1], p[:, 0])
    rgb = np.stack([0.55 + 0.3 * h, 0.25 + 0.2 * np.sin(3 * ang) * h, 0.2 + 0.5 * (1 - h)], axis=1)
    label = (np.abs(p[:, 2] - 0.5) < 0.12) & (np.cos(ang) > 0.3)
    stripes = (np.floor(p[:, 2] * 60) % 2 == 0) & label
    rgb[label] = (0.92, 0.9, 0.85)
    rgb[stripes] = (0.1, 0.1, 0.12)
    return p, normals, rgb


def _box(rng: np.random.Generator, n: int) -> tuple[F64, F64, F64]:
    """A small box beside the vase with a checker print."""
    half = np.array([0.12, 0.18, 0.1])
    centre = np.array([0.45, -0.1, 0.1])
    areas = np.array([half[1] * half[2], half[0] * half[2], half[0] * half[1]])
    axis = rng.choice(3, size=n, p=np.repeat(areas, 1) / areas.sum())
    sign = rng.choice([-1.0, 1.0], size=n)
    u = rng.uniform(-1, 1, size=(n, 3)) * half
    u[np.arange(n), axis] = sign * half[axis]
    normals = np.zeros((n, 3))
    normals[np.arange(n), axis] = sign
    checker = (np.floor(u[:, 0] * 25) + np.floor(u[:, 1] * 25) + np.floor(u[:, 2] * 25)) % 2
    rgb = np.where(checker[:, None] > 0, [[0.15, 0.35, 0.7]], [[0.85, 0.8, 0.3]])
    return centre + u, normals, rgb


def _disc(rng: np.random.Generator, n: int) -> tuple[F64, F64, F64]:
    """The turntable top: a grey disc with faint wood-like rings."""
    r = 0.75 * np.sqrt(rng.uniform(size=n))
    a = rng.uniform(0, 2 * np.pi, size=n)
    p = np.stack([r * np.cos(a), r * np.sin(a), np.zeros(n)], axis=1)
    normals = np.tile([0.0, 0.0, 1.0], (n, 1))
    g = 0.45 + 0.08 * np.sin(r * 90) + 0.05 * np.cos(a * 7)
    rgb = np.stack([g + 0.05, g, g - 0.04], axis=1)
    return p, normals, rgb


def synthetic_object(n: int, sh_degree: int = 3, seed: int = 0) -> Splat:
    """``n`` gaussians of the scene described in the module docstring; same seed, same splat."""
    if n < 0:
        raise ValueError("n must be >= 0")
    if sh_degree not in SH_REST_COUNT:
        raise ValueError(f"sh_degree must be 0..3, got {sh_degree}")
    rng = np.random.default_rng(seed)
    counts = [int(n * f) for f in _PARTS[:-1]]
    counts.append(n - sum(counts))
    parts = [_body(rng, counts[0]), _box(rng, counts[1]), _disc(rng, counts[2])]
    surf_n = sum(counts[:3])
    means = np.concatenate([p for p, _, _ in parts])
    normals = np.concatenate([nm for _, nm, _ in parts])
    rgb = np.concatenate([c for _, _, c in parts])

    # Surface gaussians: tangent sizes near the sample spacing (total area ≈ 4.3 units²), thin
    # along the normal, with a lognormal spread; a random spin about the normal.
    spacing = np.sqrt(4.3 / max(surf_n, 1))
    tangent = spacing * np.exp(rng.normal(0.2, 0.45, size=(surf_n, 2)))
    thin = tangent.min(axis=1, keepdims=True) * np.exp(rng.normal(-2.3, 0.5, size=(surf_n, 1)))
    scales = np.log(np.concatenate([tangent, thin], axis=1))
    frames = _frames(normals)
    spin = rng.uniform(0, 2 * np.pi, size=surf_n)
    c, s = np.cos(spin), np.sin(spin)
    t1 = frames[:, :, 0] * c[:, None] + frames[:, :, 1] * s[:, None]
    t2 = np.cross(frames[:, :, 2], t1)
    frames = np.stack([t1, t2, frames[:, :, 2]], axis=2)
    quats = matrix_to_quat(frames)
    # Small positional jitter off the surface, as optimisation leaves it.
    means = means + normals / np.linalg.norm(normals, axis=1, keepdims=True) * rng.normal(
        0, spacing * 0.2, size=(surf_n, 1)
    )
    # Bimodal opacity: ~65 % solid, ~35 % faint.
    solid = rng.uniform(size=surf_n) < 0.65
    alpha = np.where(solid, rng.beta(6, 1.2, size=surf_n), rng.beta(1.1, 6, size=surf_n))
    rgb = np.clip(rgb + rng.normal(0, 0.02, size=rgb.shape), 0.0, 1.0)

    # Floaters: big, faint, anywhere within a few units of the object.
    fn = counts[3]
    fdir = rng.normal(size=(fn, 3))
    fdir /= np.maximum(np.linalg.norm(fdir, axis=1, keepdims=True), 1e-9)
    fpos = fdir * rng.uniform(1.2, 4.0, size=(fn, 1)) + [0.0, 0.0, 0.5]
    fscale = np.log(np.exp(rng.normal(-3.0, 0.7, size=(fn, 3))))
    fq = rng.normal(size=(fn, 4))
    fq /= np.linalg.norm(fq, axis=1, keepdims=True)
    falpha = rng.beta(1.0, 8.0, size=fn)
    frgb = rng.uniform(0.1, 0.9, size=(fn, 3))

    k = SH_REST_COUNT[sh_degree]
    # View-dependent colour: small, smooth over the object (depends on position), decaying by band.
    band_of = np.repeat([1, 2, 3], [3, 5, 7])[:k]
    sh_n = rng.standard_normal(size=(n, k, 3), dtype=np.float32)
    sh_n *= (0.06 / band_of**1.5)[None, :, None].astype(np.float32)
    return Splat(
        means=np.concatenate([means, fpos]),
        scales=np.concatenate([scales, fscale]),
        quats=np.concatenate([quats, fq]),
        opacities=logit(np.concatenate([alpha, falpha]), eps=1e-4),
        sh0=rgb_to_sh0(np.concatenate([rgb, frgb])),
        shN=sh_n,
    )
