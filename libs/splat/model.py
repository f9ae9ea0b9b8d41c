"""The in-memory Gaussian splat: one struct of numpy arrays, stored as 3DGS trains it.

Values keep the activations' *inputs* (log scales, logit opacities, raw SH coefficients), the
same as the standard 3DGS ``.ply``, so reading and writing that format is lossless and every other
format converts from one well-defined place. Helpers give the activated values where needed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]

#: Zeroth-order real spherical harmonic constant: colour = 0.5 + SH_C0 * f_dc.
SH_C0 = 0.28209479177387814

#: Number of non-DC SH coefficients per colour channel for degree 0..3.
SH_REST_COUNT = {0: 0, 1: 3, 2: 8, 3: 15}
_DEGREE_OF_REST = {v: k for k, v in SH_REST_COUNT.items()}


def sigmoid(x: npt.ArrayLike) -> F32:
    """Logistic function in float32, stable for large |x|."""
    a = np.asarray(x, dtype=np.float32)
    out: F32 = np.empty_like(a)
    pos = a >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-a[pos]))
    e = np.exp(a[~pos])
    out[~pos] = e / (1.0 + e)
    return out


def logit(p: npt.ArrayLike, eps: float = 1e-6) -> F32:
    """Inverse of :func:`sigmoid`, clipped so 0 and 1 stay finite."""
    a = np.clip(np.asarray(p, dtype=np.float64), eps, 1.0 - eps)
    return np.log(a / (1.0 - a)).astype(np.float32)


def sh0_to_rgb(sh0: npt.ArrayLike) -> F32:
    """DC coefficients to linear-ish display colour in [0, 1] (not clipped)."""
    return (0.5 + SH_C0 * np.asarray(sh0, dtype=np.float32)).astype(np.float32)


def rgb_to_sh0(rgb: npt.ArrayLike) -> F32:
    """Inverse of :func:`sh0_to_rgb`."""
    return ((np.asarray(rgb, dtype=np.float32) - 0.5) / SH_C0).astype(np.float32)


def sh_degree_for_rest(k: int) -> int:
    """SH degree for K rest coefficients per channel (0, 3, 8, 15); ValueError otherwise."""
    try:
        return _DEGREE_OF_REST[k]
    except KeyError:
        raise ValueError(
            f"{k} SH rest coefficients per channel is not a full SH degree (expected 0, 3, 8 or 15)"
        ) from None


def _f32(a: npt.ArrayLike) -> F32:
    return np.ascontiguousarray(a, dtype=np.float32)


class Splat:
    """N Gaussians as parallel float32 arrays.

    - ``means`` (N,3): centres.
    - ``scales`` (N,3): *log* standard deviations along the local axes.
    - ``quats`` (N,4): rotation as (w, x, y, z); not necessarily unit length (see :meth:`normalized`).
    - ``opacities`` (N,): *logit* opacity.
    - ``sh0`` (N,3): SH DC coefficients (``f_dc_0..2``).
    - ``shN`` (N,K,3): higher-order SH, K in {0, 3, 8, 15}; ``shN[:, k, c]`` is coefficient k of
      colour channel c (the .ply stores them channel-major: all R, then all G, then all B).

    The constructor takes anything array-like and stores contiguous float32 copies/views.
    """

    means: F32
    scales: F32
    quats: F32
    opacities: F32
    sh0: F32
    shN: F32

    def __init__(
        self,
        means: npt.ArrayLike,
        scales: npt.ArrayLike,
        quats: npt.ArrayLike,
        opacities: npt.ArrayLike,
        sh0: npt.ArrayLike,
        shN: npt.ArrayLike | None = None,
    ) -> None:
        self.means = _f32(means).reshape(-1, 3)
        n = self.means.shape[0]
        self.scales = _f32(scales).reshape(-1, 3)
        self.quats = _f32(quats).reshape(-1, 4)
        self.opacities = _f32(opacities).reshape(-1)
        self.sh0 = _f32(sh0).reshape(-1, 3)
        sh_n = _f32(shN if shN is not None else np.zeros((n, 0, 3)))
        if sh_n.size == 0:
            sh_n = np.zeros((n, 0, 3), np.float32)
        self.shN = sh_n.reshape(n, -1, 3) if sh_n.ndim != 3 else sh_n
        self.check_shapes()

    # ---- shape and size -------------------------------------------------------------------
    @property
    def count(self) -> int:
        return int(self.means.shape[0])

    def __len__(self) -> int:
        return self.count

    @property
    def sh_degree(self) -> int:
        return sh_degree_for_rest(int(self.shN.shape[1]))

    def check_shapes(self) -> None:
        """Raise ValueError if the arrays disagree about N or have wrong trailing shapes."""
        n = self.count
        want: dict[str, tuple[int, ...]] = {
            "means": (n, 3),
            "scales": (n, 3),
            "quats": (n, 4),
            "opacities": (n,),
            "sh0": (n, 3),
        }
        for name, shape in want.items():
            got = getattr(self, name).shape
            if got != shape:
                raise ValueError(f"splat.{name} has shape {got}, expected {shape}")
        if self.shN.ndim != 3 or self.shN.shape[0] != n or self.shN.shape[2] != 3:
            raise ValueError(f"splat.shN has shape {self.shN.shape}, expected ({n}, K, 3)")
        sh_degree_for_rest(int(self.shN.shape[1]))

    @classmethod
    def empty(cls, sh_degree: int = 0) -> Splat:
        k = SH_REST_COUNT[sh_degree]
        z = np.zeros
        return cls(z((0, 3)), z((0, 3)), z((0, 4)), z((0,)), z((0, 3)), z((0, k, 3)))

    # ---- derived values --------------------------------------------------------------------
    def normalized(self) -> Splat:
        """A copy whose quaternions have unit length and non-negative w (zero ones become identity)."""
        out = self.copy()
        out.quats = normalize_quats(out.quats)
        return out

    def activated_opacities(self) -> F32:
        """Opacity in [0, 1]."""
        return sigmoid(self.opacities)

    def activated_scales(self) -> F32:
        """Linear standard deviations."""
        return np.exp(self.scales).astype(np.float32)

    def colors(self) -> F32:
        """DC colour in [0, 1] (clipped): what a degree-0 viewer shows."""
        return np.clip(sh0_to_rgb(self.sh0), 0.0, 1.0)

    def sh_rest_flat(self) -> F32:
        """shN as (N, 3*K) in .ply order: f_rest_0..K-1 = R, then G, then B."""
        return np.ascontiguousarray(self.shN.transpose(0, 2, 1).reshape(self.count, -1))

    @staticmethod
    def sh_rest_from_flat(flat: npt.ArrayLike) -> F32:
        """Inverse of :meth:`sh_rest_flat`: (N, 3*K) channel-major to (N, K, 3)."""
        a = np.asarray(flat, dtype=np.float32)
        n, m = a.shape
        if m % 3:
            raise ValueError(f"{m} SH rest values per gaussian is not a multiple of 3")
        return np.ascontiguousarray(a.reshape(n, 3, m // 3).transpose(0, 2, 1))

    # ---- selections and copies -------------------------------------------------------------
    def subset(self, sel: npt.ArrayLike) -> Splat:
        """The gaussians picked by a boolean mask or an index array (in that order)."""
        idx = np.asarray(sel)
        if idx.dtype == bool and idx.shape != (self.count,):
            raise ValueError(f"mask has shape {idx.shape}, expected ({self.count},)")
        return Splat(
            means=self.means[idx],
            scales=self.scales[idx],
            quats=self.quats[idx],
            opacities=self.opacities[idx],
            sh0=self.sh0[idx],
            shN=self.shN[idx],
        )

    def with_sh_degree(self, degree: int) -> Splat:
        """A copy with SH truncated to ``degree`` or zero-padded up to it."""
        if degree not in SH_REST_COUNT:
            raise ValueError(f"SH degree must be 0..3, got {degree}")
        k = SH_REST_COUNT[degree]
        cur = self.shN.shape[1]
        if k <= cur:
            sh_n = self.shN[:, :k, :].copy()
        else:
            sh_n = np.zeros((self.count, k, 3), np.float32)
            sh_n[:, :cur, :] = self.shN
        out = self.copy(with_sh=False)
        out.shN = sh_n
        return out

    def copy(self, with_sh: bool = True) -> Splat:
        return Splat(
            means=self.means.copy(),
            scales=self.scales.copy(),
            quats=self.quats.copy(),
            opacities=self.opacities.copy(),
            sh0=self.sh0.copy(),
            shN=self.shN.copy() if with_sh else np.zeros((self.count, 0, 3), np.float32),
        )

    @staticmethod
    def concat(parts: list[Splat]) -> Splat:
        """Join splats of the same SH degree."""
        if not parts:
            return Splat.empty()
        degrees = {p.sh_degree for p in parts}
        if len(degrees) != 1:
            raise ValueError(f"cannot join splats of SH degrees {sorted(degrees)}")
        return Splat(
            means=np.concatenate([p.means for p in parts]),
            scales=np.concatenate([p.scales for p in parts]),
            quats=np.concatenate([p.quats for p in parts]),
            opacities=np.concatenate([p.opacities for p in parts]),
            sh0=np.concatenate([p.sh0 for p in parts]),
            shN=np.concatenate([p.shN for p in parts]),
        )

    # ---- validation helpers -----------------------------------------------------------------
    def nonfinite_rows(self) -> npt.NDArray[np.bool_]:
        """Mask of gaussians with a NaN or infinite value in any attribute."""
        bad = ~np.isfinite(self.means).all(axis=1)
        bad |= ~np.isfinite(self.scales).all(axis=1)
        bad |= ~np.isfinite(self.quats).all(axis=1)
        bad |= ~np.isfinite(self.opacities)
        bad |= ~np.isfinite(self.sh0).all(axis=1)
        if self.shN.shape[1]:
            bad |= ~np.isfinite(self.shN).all(axis=(1, 2))
        return bad

    def zero_quat_rows(self, eps: float = 1e-12) -> npt.NDArray[np.bool_]:
        """Mask of gaussians whose quaternion has (near) zero length: no defined rotation."""
        sq: npt.NDArray[np.float32] = np.einsum("ij,ij->i", self.quats, self.quats)
        return sq <= eps

    def nbytes(self) -> int:
        return sum(getattr(self, n).nbytes for n in ("means", "scales", "quats", "opacities", "sh0", "shN"))

    def allclose(self, other: Splat, **kw: Any) -> bool:
        """Same count, degree and values within numpy's allclose tolerances (for tests)."""
        if self.count != other.count or self.shN.shape != other.shN.shape:
            return False
        return all(
            np.allclose(getattr(self, n), getattr(other, n), **kw)
            for n in ("means", "scales", "quats", "opacities", "sh0", "shN")
        )

    def __repr__(self) -> str:
        return f"Splat(count={self.count}, sh_degree={self.sh_degree})"


def normalize_quats(q: npt.ArrayLike) -> F32:
    """Unit quaternions (w,x,y,z) with w >= 0; zero-length ones become identity."""
    a = np.asarray(q, dtype=np.float32).reshape(-1, 4)
    norm = np.sqrt(np.einsum("ij,ij->i", a, a))
    out = np.empty_like(a)
    ok = norm > 1e-12
    out[ok] = a[ok] / norm[ok, None]
    out[~ok] = (1.0, 0.0, 0.0, 0.0)
    out[out[:, 0] < 0] *= -1.0
    return out
