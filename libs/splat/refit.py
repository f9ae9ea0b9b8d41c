"""Re-fit a reduced splat to the original's renders: a few gradient steps on the CPU.

Merging (:mod:`.merge`) decides *which* gaussians stand in for the original; the values it
gives them are moment estimates, not what makes the picture match. Here the survivors'
opacity, colour (every SH coefficient), log-scales and centres are optimised with Adam so that
their renders match the original's renders, view by view. Views are spread evenly over the
sphere around the robust bounds (a Fibonacci lattice), so every side counts; they deliberately
differ from the orbit views ``foto3d splat compare`` and the benchmark score with, so a score
measures views the fit never saw.

The rasterizer is :mod:`.render`'s math (same projection, SH, alpha rules) with a compositing
loop written without in-place updates, so torch can differentiate it. torch is needed (the
``quality`` extra), as for everything that renders.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from foto3d.libs.splat.cameras import Camera
from foto3d.libs.splat.model import Splat
from foto3d.libs.splat.quality import look_at, robust_bounds
from foto3d.libs.splat.render import (
    ALPHA_MAX,
    ALPHA_MIN,
    T_MIN,
    TILE,
    Projected,
    SplatTensors,
    _bin_tiles,
    covariances,
    eval_sh,
    project,
    render,
)

_BATCH = 64


@dataclass(frozen=True)
class RefitOptions:
    """How hard to fit, and when to stop. Defaults measured on real scenes (docs/benchmarks.md)."""

    steps: int = 200  # at most this many Adam steps, one view each
    seconds: float | None = None  # stop after this long (targets and checks included); None = no limit
    views: int = 48  # fitting views
    size: int = 112  # fitting image size
    check_views: int = 6  # held-out views that decide which step is kept
    check_size: int = 160  # larger than ``size``: detail a fit at low resolution blurs shows up here
    check_every: int = 25  # steps between checks
    patience: int = 2  # checks without improvement before the rates drop, or the fit stops
    lr_cuts: int = 2  # times the rates are cut on a plateau before stopping early
    lr_cut: float = 0.3  # each cut multiplies every learning rate by this
    lr_opacity: float = 0.05
    lr_color: float = 0.01
    lr_sh: float = 0.005
    lr_scale: float = 0.01
    lr_mean: float = 1e-4  # times the robust bounds' diagonal
    seed: int = 0


@dataclass
class RefitResult:
    """What :func:`refit` returns: the best splat found and how it was found."""

    splat: Splat
    steps: int  # steps run
    best_step: int  # the step whose values were kept (0 = the input, unchanged)
    psnr_before: float  # PSNR of the input on the held-out views, dB
    psnr_after: float  # PSNR of the returned splat on the held-out views, dB (>= psnr_before)
    seconds: float
    stopped: str  # "steps", "time" or "no gain"
    lr_cuts: int = 0  # times the learning rates were cut on a plateau

    def to_dict(self) -> dict[str, object]:
        return {
            "steps": self.steps,
            "best_step": self.best_step,
            "check_psnr_before": round(self.psnr_before, 3),
            "check_psnr_after": round(self.psnr_after, 3),
            "seconds": round(self.seconds, 2),
            "stopped": self.stopped,
            "lr_cuts": self.lr_cuts,
        }


def sphere_cameras(
    splat: Splat, views: int, size: int, up: str, fov_deg: float = 50.0, turn: float = 0.0
) -> list[Camera]:
    """``views`` cameras on a Fibonacci sphere around the robust bounds, each framing them;
    ``turn`` (radians) rotates the lattice about the up axis, so two calls give distinct views."""
    from foto3d.libs.splat.coords import UP_AXES

    lo, hi = robust_bounds(splat.means)
    centre = (lo.astype(np.float64) + hi) / 2
    radius = max(float(np.linalg.norm(hi.astype(np.float64) - lo)) / 2, 1e-3)
    half = math.radians(fov_deg) / 2
    dist = radius / math.sin(half) * 1.02
    focal = 0.5 * size / math.tan(half)
    u = np.asarray(UP_AXES[up], np.float64)
    a1 = np.cross(u, [1.0, 0.0, 0.0] if abs(u[0]) < 0.9 else [0.0, 1.0, 0.0])
    a1 /= np.linalg.norm(a1)
    a2 = np.cross(u, a1)
    golden = math.pi * (3.0 - math.sqrt(5.0))
    cams = []
    for i in range(views):
        h = 1.0 - 2.0 * (i + 0.5) / views  # height along up, -1..1
        h = max(-0.97, min(0.97, h))  # not straight along up: look_at needs a horizon
        r = math.sqrt(1.0 - h * h)
        az = golden * i + turn
        direction = r * (math.cos(az) * a1 + math.sin(az) * a2) + h * u
        eye = centre + dist * direction
        cams.append(Camera(look_at(eye, centre, u), focal, focal, size / 2, size / 2, size, size))
    return cams


class _Params(torch.nn.Module):
    def __init__(self, splat: Splat) -> None:
        super().__init__()
        s = splat.normalized()

        def p(a: np.ndarray) -> torch.nn.Parameter:
            return torch.nn.Parameter(torch.from_numpy(np.ascontiguousarray(a, np.float32)))

        self.means = p(s.means)
        self.scales = p(s.scales)
        self.quats = torch.from_numpy(np.ascontiguousarray(s.quats, np.float32))
        self.opacities = p(s.opacities)
        self.sh0 = p(s.sh0)
        self.shN = p(s.shN)
        self.degree = s.sh_degree

    def to_splat(self) -> Splat:
        with torch.no_grad():
            return Splat(
                self.means.numpy(),
                self.scales.numpy(),
                self.quats.numpy(),
                self.opacities.numpy(),
                self.sh0.numpy(),
                self.shN.numpy(),
            )


@torch.no_grad()
def _opaque_depth(
    proj: Projected,
    opac: torch.Tensor,
    gids: torch.Tensor,
    starts: torch.Tensor,
    counts: torch.Tensor,
    pxc: torch.Tensor,
    pyc: torch.Tensor,
) -> torch.Tensor:
    """Per tile, how many splats (in batches) are drawn before every pixel is opaque: the
    splats behind cannot change the image, so the differentiable pass stops there."""
    end = counts.clone()
    trans = torch.ones(pxc.shape)
    active = (counts > 0).nonzero().squeeze(1)
    depth = 0
    while active.numel():
        rank = depth + torch.arange(_BATCH)
        valid = rank[None, :] < counts[active][:, None]
        idx = torch.where(valid, starts[active][:, None] + rank[None, :], torch.zeros_like(rank)[None, :])
        g = gids[idx]
        dx = pxc[active][:, None, :] - proj.means2d[g, 0][:, :, None]
        dy = pyc[active][:, None, :] - proj.means2d[g, 1][:, :, None]
        cn = proj.conics[g]
        sigma = 0.5 * (cn[..., 0:1] * dx * dx + cn[..., 2:3] * dy * dy) + cn[..., 1:2] * dx * dy
        alpha = torch.clamp(opac[g][..., None] * torch.exp(-sigma), max=ALPHA_MAX)
        alpha = torch.where((sigma >= 0) & (alpha >= ALPHA_MIN) & valid[..., None], alpha, 0.0)
        t = trans[active] * torch.prod(1.0 - alpha, dim=1)
        trans[active] = t
        depth += _BATCH
        finished = (t < T_MIN).all(dim=1)
        end[active[finished]] = depth
        active = active[(counts[active] > depth) & ~finished]
    return end


def render_differentiable(p: _Params, cam: Camera) -> torch.Tensor:
    """(H, W, 3) image on black, differentiable in every parameter of ``p``."""
    w, h = cam.width, cam.height
    covars = covariances(p.quats, torch.exp(p.scales))
    proj = project(p.means, covars, cam)
    with torch.no_grad():
        visible = (proj.radii > 0).all(dim=1).nonzero().squeeze(1)
        visible = visible[torch.argsort(proj.depths[visible], stable=True)]
        tiles_x, tiles_y = (w + TILE - 1) // TILE, (h + TILE - 1) // TILE
        gids, offsets = _bin_tiles(proj, visible, tiles_x, tiles_y)
    campos = torch.from_numpy(cam.position.astype(np.float32))
    sh = torch.cat([p.sh0[:, None, :], p.shN], dim=1)
    dirs = torch.nn.functional.normalize(p.means.detach() - campos, dim=-1)
    colors = torch.clamp(eval_sh(sh, dirs, p.degree) + 0.5, min=0.0)
    opac = torch.sigmoid(p.opacities)
    n_tiles, n_pix = tiles_x * tiles_y, TILE * TILE
    ly, lx = torch.meshgrid(torch.arange(TILE), torch.arange(TILE), indexing="ij")
    tile_ids = torch.arange(n_tiles)
    gx = (tile_ids % tiles_x)[:, None] * TILE + lx.reshape(1, -1)
    gy = (tile_ids // tiles_x)[:, None] * TILE + ly.reshape(1, -1)
    pxc, pyc = gx.float() + 0.5, gy.float() + 0.5
    starts, counts = offsets[:-1], offsets[1:] - offsets[:-1]
    counts = torch.minimum(counts, _opaque_depth(proj, opac.detach(), gids, starts, counts, pxc, pyc))
    trans = torch.ones(n_tiles, n_pix)
    acc = torch.zeros(n_tiles, n_pix, 3)
    depth = 0
    active = (counts > 0).nonzero().squeeze(1)
    while active.numel():
        rank = depth + torch.arange(_BATCH)
        valid = rank[None, :] < counts[active][:, None]
        idx = torch.where(valid, starts[active][:, None] + rank[None, :], torch.zeros_like(rank)[None, :])
        g = gids[idx]
        dx = pxc[active][:, None, :] - proj.means2d[g, 0][:, :, None]
        dy = pyc[active][:, None, :] - proj.means2d[g, 1][:, :, None]
        cn = proj.conics[g]
        sigma = 0.5 * (cn[..., 0:1] * dx * dx + cn[..., 2:3] * dy * dy) + cn[..., 1:2] * dx * dy
        alpha = torch.clamp(opac[g][..., None] * torch.exp(-sigma), max=ALPHA_MAX)
        ok = (sigma >= 0) & (alpha >= ALPHA_MIN) & valid[..., None]
        alpha = torch.where(ok, alpha, torch.zeros_like(alpha))
        t0 = trans[active]
        after = t0[:, None, :] * torch.cumprod(1.0 - alpha, dim=1)
        before = torch.cat([t0[:, None, :], after[:, :-1]], dim=1)
        weight = alpha * before
        acc = acc.index_add(0, active, torch.einsum("cbp,cbk->cpk", weight, colors[g]))
        trans = trans.index_copy(0, active, after[:, -1])
        depth += _BATCH
        active = active[counts[active] > depth]
    image = (
        acc.reshape(tiles_y, tiles_x, TILE, TILE, 3)
        .permute(0, 2, 1, 3, 4)
        .reshape(tiles_y * TILE, tiles_x * TILE, 3)
    )
    return image[:h, :w].clamp(0.0, 1.0)


def _check_error(params: _Params, cams: list[Camera], targets: list[torch.Tensor]) -> float:
    """Mean squared error of ``params``' renders against ``targets`` (the held-out views)."""
    st = SplatTensors(params.to_splat())
    errs = [
        float(torch.mean((torch.from_numpy(render(st, c).image) - t) ** 2))
        for c, t in zip(cams, targets, strict=True)
    ]
    return float(np.mean(errs))


def _db(mse: float) -> float:
    return math.inf if mse <= 0 else -10.0 * math.log10(mse)


def refit(
    original: Splat,
    reduced: Splat,
    *,
    up: str,
    options: RefitOptions | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> RefitResult:
    """``reduced`` with its values optimised to reproduce ``original``'s renders.

    Every ``check_every`` steps the current values are scored on held-out views (neither the
    fitting views nor the orbit views ``compare`` uses); the best values seen are returned, and
    the input itself counts as step 0, so the result never scores worse than the input there.
    Stops at ``steps``, at ``seconds``, or after ``patience`` checks without a gain once the
    learning rates have been cut ``lr_cuts`` times (each cut after ``patience`` such checks)."""
    opt = options or RefitOptions()
    t0 = time.perf_counter()
    if reduced.count == 0 or opt.steps <= 0:
        return RefitResult(reduced.copy(), 0, 0, math.nan, math.nan, 0.0, "steps")
    torch.manual_seed(opt.seed)
    ref_st = SplatTensors(original)
    cams = sphere_cameras(original, opt.views, opt.size, up)
    # Half a lattice step further round: the checking views fall between the fitting views.
    check_cams = sphere_cameras(
        original, opt.check_views, opt.check_size, up, turn=math.pi * (3.0 - math.sqrt(5.0)) / 2
    )
    check_targets = [torch.from_numpy(render(ref_st, c).image) for c in check_cams]
    params = _Params(reduced)
    best_err = before = _check_error(params, check_cams, check_targets)
    best: Splat = reduced.copy()
    best_step, since_best, stopped, step, cuts = 0, 0, "steps", 0, 0
    targets: dict[int, torch.Tensor] = {}  # fitting targets, rendered when first needed
    lo, hi = robust_bounds(original.means)
    extent = float(np.linalg.norm(hi.astype(np.float64) - lo)) or 1.0
    groups = [
        {"params": [params.opacities], "lr": opt.lr_opacity},
        {"params": [params.sh0], "lr": opt.lr_color},
        {"params": [params.scales], "lr": opt.lr_scale},
        {"params": [params.means], "lr": opt.lr_mean * extent},
    ]
    if params.shN.shape[1]:
        groups.append({"params": [params.shN], "lr": opt.lr_sh})
    adam = torch.optim.Adam(groups, eps=1e-15)
    order = np.random.default_rng(opt.seed).permutation(max(opt.steps, len(cams))) % len(cams)
    while step < opt.steps:
        view = int(order[step % len(order)])
        if view not in targets:
            targets[view] = torch.from_numpy(render(ref_st, cams[view]).image)
        image = render_differentiable(params, cams[view])
        loss = torch.mean((image - targets[view]) ** 2)
        adam.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        adam.step()
        step += 1
        if progress:
            progress(step, opt.steps)
        out_of_time = opt.seconds is not None and time.perf_counter() - t0 >= opt.seconds
        if step % opt.check_every == 0 or step == opt.steps or out_of_time:
            err = _check_error(params, check_cams, check_targets)
            if err < best_err:
                best_err, best, best_step, since_best = err, params.to_splat().copy(), step, 0
            else:
                since_best += 1
            if out_of_time:
                stopped = "time"
                break
            if since_best >= opt.patience:
                if cuts >= opt.lr_cuts:
                    stopped = "no gain"
                    break
                # A plateau at these rates is often Adam stepping over the minimum: smaller steps
                # go on gaining (measured on real scenes, docs/benchmarks.md).
                cuts, since_best = cuts + 1, 0
                for group in adam.param_groups:
                    group["lr"] *= opt.lr_cut
    if progress and step < opt.steps:
        progress(opt.steps, opt.steps)  # finish the bar when stopping early
    return RefitResult(
        best, step, best_step, _db(before), _db(best_err), time.perf_counter() - t0, stopped, cuts
    )
