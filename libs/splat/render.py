"""A Gaussian-splat rasterizer that runs on the CPU (torch), for measuring quality.

It follows the math of gsplat's reference implementation (EWA projection with the same frustum
clamp and 0.3 px low-pass, the same 3.33-sigma radii, front-to-back alpha compositing with alpha
capped at 0.999, splats below 1/255 skipped and a pixel finished once its transmittance would fall
under 1e-4), so images match what a viewer shows. The tests compare every stage with gsplat's
pure-PyTorch reference functions. Instead of gsplat's per-gaussian Python loop for tile binning,
binning here is vectorised; compositing (gsplat's is a CUDA kernel) processes every 8x8 tile at
once, 32 splats deep per step, dropping tiles that are used up or opaque. Small tiles matter:
after the 0.3 px low-pass most gaussians of a dense scene cover ~4x4 pixels, so the work follows
the number of gaussian-tile overlaps x 64 pixels.

torch is an optional dependency (the ``quality`` extra); import this module lazily.

Cameras use the OpenCV convention (x right, y down, z forward) with a world-to-camera matrix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch

from foto3d.libs.splat.cameras import Camera
from foto3d.libs.splat.model import Splat

TILE = 8
ALPHA_MIN = 1.0 / 255.0
ALPHA_MAX = 0.999
T_MIN = 1e-4
EPS2D = 0.3
NEAR = 0.01
_BATCH = 32  # splats per tile composited in one step (tiles x 32 x 64 floats per array)

# Real SH basis constants (the ones every 3DGS renderer uses).
_C0 = 0.28209479177387814
_C1 = 0.4886025119029199
_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
_C3 = (
    -0.5900435899266435,
    2.890611442640554,
    -0.4570457994644658,
    0.3731763325901154,
    -0.4570457994644658,
    1.445305721320277,
    -0.5900435899266435,
)


@dataclass
class Render:
    """One rendered view: ``image`` (H,W,3) float32 in [0,1], ``alpha`` (H,W), and optionally
    ``contribution`` (N,): each gaussian's summed blending weight over the image's pixels."""

    image: npt.NDArray[np.float32]
    alpha: npt.NDArray[np.float32]
    contribution: npt.NDArray[np.float32] | None = None


@dataclass
class Projected:
    """Per-gaussian screen-space values for one camera (torch tensors, length N)."""

    means2d: torch.Tensor  # (N,2) pixels
    conics: torch.Tensor  # (N,3) inverse 2D covariance (a, b, c)
    depths: torch.Tensor  # (N,)
    radii: torch.Tensor  # (N,2) int, 0 where culled


class SplatTensors:
    """A splat's values activated once as torch tensors, reused across views."""

    def __init__(self, splat: Splat, sh_degree: int | None = None) -> None:
        deg = splat.sh_degree if sh_degree is None else min(sh_degree, splat.sh_degree)
        self.count = splat.count
        self.sh_degree = deg
        self.means = torch.from_numpy(np.ascontiguousarray(splat.means, np.float32))
        quats = torch.from_numpy(np.ascontiguousarray(splat.quats, np.float32))
        scales = torch.exp(torch.from_numpy(np.ascontiguousarray(splat.scales, np.float32)))
        self.covars = covariances(quats, scales)
        self.opacities = torch.sigmoid(torch.from_numpy(np.ascontiguousarray(splat.opacities, np.float32)))
        k = (deg + 1) ** 2 - 1
        coeffs = [torch.from_numpy(np.ascontiguousarray(splat.sh0, np.float32))[:, None, :]]
        if k:
            coeffs.append(torch.from_numpy(np.ascontiguousarray(splat.shN[:, :k, :], np.float32)))
        self.sh = torch.cat(coeffs, dim=1)  # (N, (deg+1)^2, 3)


def quat_to_rotmat(quats: torch.Tensor) -> torch.Tensor:
    """(N,4) wxyz quaternions (any length) to (N,3,3) rotation matrices."""
    q = torch.nn.functional.normalize(quats, dim=-1)
    w, x, y, z = q.unbind(-1)
    rows = [
        1 - 2 * (y * y + z * z),
        2 * (x * y - w * z),
        2 * (x * z + w * y),
        2 * (x * y + w * z),
        1 - 2 * (x * x + z * z),
        2 * (y * z - w * x),
        2 * (x * z - w * y),
        2 * (y * z + w * x),
        1 - 2 * (x * x + y * y),
    ]
    return torch.stack(rows, dim=-1).reshape(-1, 3, 3)


def covariances(quats: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """World-space 3x3 covariances R S S^T R^T from quaternions and linear scales."""
    m = quat_to_rotmat(quats) * scales[:, None, :]
    return m @ m.transpose(1, 2)


def project(means: torch.Tensor, covars: torch.Tensor, cam: Camera) -> Projected:
    """EWA-project gaussians into ``cam`` (same clamp, low-pass and culling as gsplat)."""
    vm = torch.from_numpy(np.asarray(cam.viewmat, np.float32))
    r, t = vm[:3, :3], vm[:3, 3]
    mc = means @ r.T + t
    cc = r @ covars @ r.T
    tx, ty, tz = mc.unbind(-1)
    tan_x, tan_y = 0.5 * cam.width / cam.fx, 0.5 * cam.height / cam.fy
    lim_xp = (cam.width - cam.cx) / cam.fx + 0.3 * tan_x
    lim_xn = cam.cx / cam.fx + 0.3 * tan_x
    lim_yp = (cam.height - cam.cy) / cam.fy + 0.3 * tan_y
    lim_yn = cam.cy / cam.fy + 0.3 * tan_y
    safe_z = torch.where(tz.abs() < 1e-12, torch.full_like(tz, 1e-12), tz)
    txc = safe_z * torch.clamp(tx / safe_z, -lim_xn, lim_xp)
    tyc = safe_z * torch.clamp(ty / safe_z, -lim_yn, lim_yp)
    zeros = torch.zeros_like(tz)
    jac = torch.stack(
        [
            cam.fx / safe_z,
            zeros,
            -cam.fx * txc / safe_z**2,
            zeros,
            cam.fy / safe_z,
            -cam.fy * tyc / safe_z**2,
        ],
        dim=-1,
    ).reshape(-1, 2, 3)
    cov2 = jac @ cc @ jac.transpose(1, 2)
    a = cov2[:, 0, 0] + EPS2D
    b = 0.5 * (cov2[:, 0, 1] + cov2[:, 1, 0])
    c = cov2[:, 1, 1] + EPS2D
    det = (a * c - b * b).clamp(min=1e-10)
    conics = torch.stack([c / det, -b / det, a / det], dim=-1)
    means2d = torch.stack([cam.fx * tx / safe_z + cam.cx, cam.fy * ty / safe_z + cam.cy], dim=-1)
    radii = torch.stack([torch.ceil(3.33 * a.sqrt()), torch.ceil(3.33 * c.sqrt())], dim=-1)
    valid = (a * c - b * b > 0) & (tz > NEAR)
    valid &= (means2d[:, 0] + radii[:, 0] > 0) & (means2d[:, 0] - radii[:, 0] < cam.width)
    valid &= (means2d[:, 1] + radii[:, 1] > 0) & (means2d[:, 1] - radii[:, 1] < cam.height)
    radii = torch.where(valid[:, None], radii, torch.zeros_like(radii)).int()
    return Projected(means2d, conics, tz, radii)


def eval_sh(sh: torch.Tensor, dirs: torch.Tensor, degree: int) -> torch.Tensor:
    """Colour from SH coefficients (N,K,3) for unit view directions (N,3): sum of basis x coeffs."""
    out = _C0 * sh[:, 0]
    if degree < 1:
        return out
    x, y, z = (d[:, None] for d in dirs.unbind(-1))
    out = out - _C1 * y * sh[:, 1] + _C1 * z * sh[:, 2] - _C1 * x * sh[:, 3]
    if degree < 2:
        return out
    xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
    out = (
        out
        + _C2[0] * xy * sh[:, 4]
        + _C2[1] * yz * sh[:, 5]
        + _C2[2] * (2 * zz - xx - yy) * sh[:, 6]
        + _C2[3] * xz * sh[:, 7]
        + _C2[4] * (xx - yy) * sh[:, 8]
    )
    if degree < 3:
        return out
    return (
        out
        + _C3[0] * y * (3 * xx - yy) * sh[:, 9]
        + _C3[1] * xy * z * sh[:, 10]
        + _C3[2] * y * (4 * zz - xx - yy) * sh[:, 11]
        + _C3[3] * z * (2 * zz - 3 * xx - 3 * yy) * sh[:, 12]
        + _C3[4] * x * (4 * zz - xx - yy) * sh[:, 13]
        + _C3[5] * z * (xx - yy) * sh[:, 14]
        + _C3[6] * x * (xx - 3 * yy) * sh[:, 15]
    )


def _bin_tiles(
    proj: Projected, ids: torch.Tensor, tiles_x: int, tiles_y: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(gaussian id per intersection sorted by tile then depth, start offset per tile + end).

    ``ids`` are the visible gaussians already sorted front to back, so a stable sort on the tile
    id keeps depth order inside each tile.
    """
    m2 = proj.means2d[ids] / TILE
    rad = proj.radii[ids].float() / TILE
    lo = torch.floor(m2 - rad).long()
    hi = torch.ceil(m2 + rad).long()
    lo[:, 0].clamp_(0, tiles_x)
    hi[:, 0].clamp_(0, tiles_x)
    lo[:, 1].clamp_(0, tiles_y)
    hi[:, 1].clamp_(0, tiles_y)
    wx, wy = hi[:, 0] - lo[:, 0], hi[:, 1] - lo[:, 1]
    counts = wx * wy
    keep = counts > 0
    ids, lo, wx, counts = ids[keep], lo[keep], wx[keep], counts[keep]
    owner = torch.repeat_interleave(torch.arange(ids.numel()), counts)
    starts = torch.cumsum(counts, 0) - counts
    local = torch.arange(owner.numel()) - starts[owner]
    tx = lo[owner, 0] + local % wx[owner]
    ty = lo[owner, 1] + local // wx[owner]
    tile = ty * tiles_x + tx
    order = torch.sort(tile, stable=True).indices
    gids = ids[owner[order]]
    per_tile = torch.bincount(tile, minlength=tiles_x * tiles_y)
    offsets = torch.zeros(tiles_x * tiles_y + 1, dtype=torch.long)
    offsets[1:] = torch.cumsum(per_tile, 0)
    return gids, offsets


@torch.no_grad()
def render(
    st: SplatTensors,
    cam: Camera,
    *,
    background: tuple[float, float, float] = (0.0, 0.0, 0.0),
    contribution: bool = False,
) -> Render:
    """Rasterize one view. With ``contribution`` also return each gaussian's summed blending
    weight (alpha x transmittance over all pixels): LightGaussian's hit-weighted significance."""
    w, h = cam.width, cam.height
    proj = project(st.means, st.covars, cam)
    visible = (proj.radii > 0).all(dim=1).nonzero().squeeze(1)
    visible = visible[torch.argsort(proj.depths[visible], stable=True)]
    campos = torch.from_numpy(cam.position.astype(np.float32))
    dirs = torch.nn.functional.normalize(st.means[visible] - campos, dim=-1)
    colors = torch.zeros(st.count, 3)
    colors[visible] = torch.clamp(eval_sh(st.sh[visible], dirs, st.sh_degree) + 0.5, min=0.0)

    tiles_x, tiles_y = (w + TILE - 1) // TILE, (h + TILE - 1) // TILE
    gids, offsets = _bin_tiles(proj, visible, tiles_x, tiles_y)
    n_tiles, n_pix = tiles_x * tiles_y, TILE * TILE
    trans = torch.ones(n_tiles, n_pix)
    done = torch.zeros(n_tiles, n_pix, dtype=torch.bool)
    acc = torch.zeros(n_tiles, n_pix, 3)
    contrib = torch.zeros(st.count) if contribution else None

    # Pixel centres of every tile, (tiles, pixels); pixels past the image edge never draw, so
    # they add nothing to contributions.
    ly, lx = torch.meshgrid(torch.arange(TILE), torch.arange(TILE), indexing="ij")
    tile_ids = torch.arange(n_tiles)
    gx = (tile_ids % tiles_x)[:, None] * TILE + lx.reshape(1, -1)
    gy = (tile_ids // tiles_x)[:, None] * TILE + ly.reshape(1, -1)
    inside = (gx < w) & (gy < h)
    pxc, pyc = gx.float() + 0.5, gy.float() + 0.5
    means2d, conics, opac = proj.means2d, proj.conics, st.opacities
    starts, counts = offsets[:-1], offsets[1:] - offsets[:-1]
    # Walk all tiles together, _BATCH splats deep at a time; tiles whose splats are used up or
    # whose pixels are all opaque drop out of the working set.
    active = (counts > 0).nonzero().squeeze(1)
    depth = 0
    while active.numel():
        rank = depth + torch.arange(_BATCH)
        valid = rank[None, :] < counts[active][:, None]  # (c, B)
        idx = torch.where(
            valid, starts[active][:, None] + rank[None, :], torch.zeros_like(valid, dtype=torch.long)
        )
        g = gids[idx]  # (c, B)
        dx = pxc[active][:, None, :] - means2d[g, 0][:, :, None]  # (c, B, P)
        dy = pyc[active][:, None, :] - means2d[g, 1][:, :, None]
        cn = conics[g]
        sigma = 0.5 * (cn[..., 0:1] * dx * dx + cn[..., 2:3] * dy * dy) + cn[..., 1:2] * dx * dy
        alpha = torch.clamp(opac[g][..., None] * torch.exp(-sigma), max=ALPHA_MAX)
        live = inside[active] & ~done[active]  # (c, P)
        ok = (sigma >= 0) & (alpha >= ALPHA_MIN) & valid[..., None] & live[:, None, :]
        alpha = torch.where(ok, alpha, 0.0)
        t0 = trans[active]  # (c, P)
        after = t0[:, None, :] * torch.cumprod(1.0 - alpha, dim=1)
        before = torch.cat([t0[:, None, :], after[:, :-1]], dim=1)
        # A pixel stops at the splat that would take its transmittance under T_MIN (that splat is
        # not drawn) and draws nothing after it, so `drawn` is monotone along the depth axis.
        drawn = after > T_MIN
        weight = torch.where(drawn, alpha * before, 0.0)  # (c, B, P)
        acc[active] += torch.einsum("cbp,cbk->cpk", weight, colors[g])
        if contrib is not None:
            contrib.index_add_(0, g[valid], weight.sum(dim=2)[valid])
        n_drawn = drawn.sum(dim=1)  # (c, P)
        last = after.gather(1, (n_drawn - 1).clamp(min=0)[:, None, :]).squeeze(1)
        trans[active] = torch.where(n_drawn > 0, last, t0)
        now_done = done[active] | (n_drawn < _BATCH)
        done[active] = now_done
        depth += _BATCH
        active = active[(counts[active] > depth) & ~now_done.all(dim=1)]

    image = (
        acc.reshape(tiles_y, tiles_x, TILE, TILE, 3)
        .permute(0, 2, 1, 3, 4)
        .reshape(tiles_y * TILE, tiles_x * TILE, 3)
    )
    trans_img = (
        trans.reshape(tiles_y, tiles_x, TILE, TILE)
        .permute(0, 2, 1, 3)
        .reshape(tiles_y * TILE, tiles_x * TILE)
    )
    image = image[:h, :w] + torch.tensor(background) * trans_img[:h, :w, None]
    return Render(
        image=image.clamp(0.0, 1.0).numpy().astype(np.float32),
        alpha=(1.0 - trans_img[:h, :w]).numpy().astype(np.float32),
        contribution=None if contrib is None else contrib.numpy(),
    )


def _final_trans(start: torch.Tensor, after: torch.Tensor, drawn: torch.Tensor) -> torch.Tensor:
    """Transmittance per pixel after a chunk: after the last drawn splat (or ``start``), and
    marked finished (0) when the pixel stopped inside the chunk."""
    n_drawn = drawn.sum(dim=0)
    last = torch.where(n_drawn > 0, after.gather(0, (n_drawn - 1).clamp(min=0)[None, :]).squeeze(0), start)
    stopped = n_drawn < drawn.shape[0]
    return torch.where(stopped, torch.zeros_like(last), last)


def render_views(
    splat: Splat,
    cams: list[Camera],
    *,
    sh_degree: int | None = None,
    background: tuple[float, float, float] = (0.0, 0.0, 0.0),
    contribution: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> list[Render]:
    """Render ``splat`` from every camera (activations computed once)."""
    st = SplatTensors(splat, sh_degree)
    out = []
    for i, cam in enumerate(cams):
        out.append(render(st, cam, background=background, contribution=contribution))
        if progress:
            progress(i + 1, len(cams))
    return out
