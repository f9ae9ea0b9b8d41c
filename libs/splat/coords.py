"""Coordinate conventions: which way is up in each format, and rotating a whole splat.

Our in-memory splat uses the frame of the file it came from; files differ in which axis their
viewers treat as *up*:

- standard ``.ply`` from nerfstudio (``ns-export gaussian-splat``): **+Z up** (nerfstudio's world);
  ``.ply`` from the original 3DGS/COLMAP pipeline is -Y up — pass ``--up -y`` for those.
- PlayCanvas (``compressed.ply``, SOG) and the antimatter15-style ``.splat`` viewers: the 3DGS/COLMAP
  convention, **-Y up** (x right, y down, z forward; PlayCanvas flips it on load).
- ``.spz`` stores RUB (x right, y up, z back). Its codec converts between RUB and the PLY
  frame (RDF, i.e. -Y up) exactly like Niantic's library, so inside our model a decoded ``.spz`` is
  -Y up, like the other web formats.

Converting therefore rotates the scene so the source's up axis becomes the target's up axis
(+Z → -Y is +90° about X). Rotations move centres and orientations and also rotate the
view-dependent colour (spherical harmonics, degree 1-3), so the object looks the same from the
same (rotated) viewpoint.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import numpy.typing as npt

from foto3d.libs.splat.model import Splat

F64 = npt.NDArray[np.float64]

UP_AXES: dict[str, tuple[float, float, float]] = {
    "x": (1.0, 0.0, 0.0),
    "-x": (-1.0, 0.0, 0.0),
    "y": (0.0, 1.0, 0.0),
    "-y": (0.0, -1.0, 0.0),
    "z": (0.0, 0.0, 1.0),
    "-z": (0.0, 0.0, -1.0),
}


def rotation_between(src_up: str, dst_up: str) -> F64:
    """The 3×3 rotation taking axis ``src_up`` onto ``dst_up`` (the shortest one; 180° about a
    perpendicular axis when they are opposite). Keys are those of :data:`UP_AXES`."""
    a = np.array(UP_AXES[src_up])
    b = np.array(UP_AXES[dst_up])
    c = float(a @ b)
    if c > 0.5:
        return np.eye(3, dtype=np.float64)
    if c < -0.5:
        # Opposite: half turn about an axis perpendicular to a (prefer x, else z).
        axis = np.array([1.0, 0.0, 0.0]) if abs(a[0]) < 0.5 else np.array([0.0, 0.0, 1.0])
        half: F64 = 2.0 * np.outer(axis, axis) - np.eye(3)
        return half
    v = np.cross(a, b)
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    quarter: F64 = np.eye(3) + vx + vx @ vx  # Rodrigues for a 90° turn (|v| = 1, c = 0)
    return quarter


def turn_axis(rot: npt.ArrayLike, axis: str) -> str:
    """The :data:`UP_AXES` key of ``axis`` turned by ``rot`` (a rotation that maps axes onto axes,
    such as a codec's frame change)."""
    v = np.asarray(rot, dtype=np.float64) @ np.array(UP_AXES[axis])
    for name, w in UP_AXES.items():
        if np.allclose(v, w, atol=1e-6):
            return name
    raise ValueError(f"rotation does not map axis {axis} onto an axis")


def matrix_to_quat(m: npt.ArrayLike) -> F64:
    """Rotation matrices (..., 3, 3) to unit quaternions (..., 4) as (w, x, y, z), w >= 0."""
    r = np.asarray(m, dtype=np.float64)
    shape = r.shape[:-2]
    r = r.reshape(-1, 3, 3)
    m00, m11, m22 = r[:, 0, 0], r[:, 1, 1], r[:, 2, 2]
    # Candidates for 4*q_i^2 from each diagonal combination; use the largest for stability.
    cand = np.stack(
        [1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], axis=1
    )
    best = np.argmax(cand, axis=1)
    s = np.sqrt(np.maximum(cand[np.arange(len(r)), best], 1e-30)) * 2.0  # = 4 * q_best
    q = np.empty((len(r), 4))
    d21, d02, d10 = r[:, 2, 1] - r[:, 1, 2], r[:, 0, 2] - r[:, 2, 0], r[:, 1, 0] - r[:, 0, 1]
    s21, s02, s10 = r[:, 2, 1] + r[:, 1, 2], r[:, 0, 2] + r[:, 2, 0], r[:, 1, 0] + r[:, 0, 1]
    rows = [
        (s / 4, d21 / s, d02 / s, d10 / s),
        (d21 / s, s / 4, s10 / s, s02 / s),
        (d02 / s, s10 / s, s / 4, s21 / s),
        (d10 / s, s02 / s, s21 / s, s / 4),
    ]
    for i, row in enumerate(rows):
        sel = best == i
        q[sel] = np.stack([c[sel] for c in row], axis=1)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    q[q[:, 0] < 0] *= -1
    return q.reshape(*shape, 4)


def quat_to_matrix(q: npt.ArrayLike) -> F64:
    """Quaternions (..., 4) as (w, x, y, z) to rotation matrices (..., 3, 3); normalises first."""
    a = np.asarray(q, dtype=np.float64)
    a = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-30)
    w, x, y, z = a[..., 0], a[..., 1], a[..., 2], a[..., 3]
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
            np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
        ],
        -2,
    )


def quat_multiply(a: npt.ArrayLike, b: npt.ArrayLike) -> F64:
    """Hamilton product a*b of (w, x, y, z) quaternions, broadcasting."""
    p = np.asarray(a, dtype=np.float64)
    q = np.asarray(b, dtype=np.float64)
    w1, x1, y1, z1 = (p[..., i] for i in range(4))
    w2, x2, y2, z2 = (q[..., i] for i in range(4))
    return np.stack(
        [
            w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
            w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
            w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
            w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
        ],
        -1,
    )


def _sh_basis(band: int, d: F64) -> F64:
    """Real SH basis of one band (1..3) at unit directions d (M,3), in the 3DGS coefficient order."""
    x, y, z = d[:, 0], d[:, 1], d[:, 2]
    if band == 1:
        return np.stack([-y, z, -x], 1) * 0.4886025119029199
    xx, yy, zz = x * x, y * y, z * z
    if band == 2:
        c = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792)
        return np.stack(
            [
                c[0] * x * y,
                c[1] * y * z,
                c[2] * (2 * zz - xx - yy),
                c[3] * x * z,
                0.5462742152960396 * (xx - yy),
            ],
            1,
        )
    c3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154)
    c3b = (-0.4570457994644658, 1.445305721320277, -0.5900435899266435)
    return np.stack(
        [
            c3[0] * y * (3 * xx - yy),
            c3[1] * x * y * z,
            c3[2] * y * (4 * zz - xx - yy),
            c3[3] * z * (2 * zz - 3 * xx - 3 * yy),
            c3b[0] * x * (4 * zz - xx - yy),
            c3b[1] * z * (xx - yy),
            c3b[2] * x * (xx - 3 * yy),
        ],
        1,
    )


@cache
def _sample_dirs() -> F64:
    rng = np.random.default_rng(12345)
    d = rng.normal(size=(64, 3))
    return np.asarray(d / np.linalg.norm(d, axis=1, keepdims=True))


def sh_rotation(rot: F64, band: int) -> F64:
    """Matrix D (2l+1 × 2l+1) with ``coeffs_rotated = D @ coeffs`` for SH band ``band``.

    Found by least squares on sample directions: a rotated colour field must satisfy
    c'(d) = c(Rᵀd) for all d, which is linear in the coefficients; exact up to float rounding.
    """
    dirs = _sample_dirs()
    y = _sh_basis(band, dirs)  # Y(d)
    y_back = _sh_basis(band, dirs @ rot)  # Y(R^T d), rows are (R^T d_i)^T = d_i^T R
    x, *_ = np.linalg.lstsq(y, y_back, rcond=None)
    # c'(d) = sum_k a_k Y_k(R^T d) = sum_k a_k sum_j X[j,k] Y_j(d)  =>  a'_j = sum_k X[j,k] a_k.
    return np.asarray(x)


def rotate(splat: Splat, rot: npt.ArrayLike) -> Splat:
    """The splat turned by the 3×3 rotation ``rot`` about the origin (means, quats and SH)."""
    r = np.asarray(rot, dtype=np.float64)
    if not np.allclose(r @ r.T, np.eye(3), atol=1e-6) or np.linalg.det(r) < 0:
        raise ValueError("rotate() needs a proper rotation matrix (orthonormal, det +1)")
    out = splat.copy()
    if np.allclose(r, np.eye(3)):
        return out
    out.means = (splat.means.astype(np.float64) @ r.T).astype(np.float32)
    q_r = matrix_to_quat(r)
    out.quats = quat_multiply(q_r, splat.quats.astype(np.float64)).astype(np.float32)
    k = splat.shN.shape[1]
    start = 0
    for band in (1, 2, 3):
        width = 2 * band + 1
        if start + width > k:
            break
        d = sh_rotation(r, band)
        if np.allclose(d, np.diag(np.diag(d)), atol=1e-9):
            # Axis flips and half turns only change signs: no mixing, a cheap broadcast.
            out.shN[:, start : start + width, :] *= np.rint(np.diag(d)).astype(np.float32)[None, :, None]
        else:
            block = splat.shN[:, start : start + width, :].astype(np.float64)  # (N, width, 3)
            out.shN[:, start : start + width, :] = np.einsum("jk,nkc->njc", d, block).astype(np.float32)
        start += width
    return out


def reorient(splat: Splat, src_up: str, dst_up: str) -> Splat:
    """Rotate so that what was up (``src_up``) is up in the target convention (``dst_up``)."""
    for a in (src_up, dst_up):
        if a not in UP_AXES:
            raise ValueError(f"unknown up axis {a!r} (choose from {', '.join(UP_AXES)})")
    return rotate(splat, rotation_between(src_up, dst_up))
