"""Make a splat smaller without retraining: drop invalid rows, faint gaussians and floaters,
reduce to a target count (merge neighbours, or prune the least important), lower the SH degree,
and optionally re-fit the result to the original's renders.

The steps run in that order; every gaussian removed is counted under one reason (the first that
applied). Pruning keeps the survivors in their original order; merging writes merged gaussians in Morton order.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from foto3d.libs.splat.cameras import Camera
from foto3d.libs.splat.floaters import FloaterOptions, find_floaters
from foto3d.libs.splat.formats.compressed_ply import morton_order
from foto3d.libs.splat.importance import importance
from foto3d.libs.splat.merge import merge_to_count
from foto3d.libs.splat.model import Splat, sigmoid
from foto3d.proto.jobs import DEFAULT_KEEP, PUBLISH_SH_DEGREE

#: Defaults recommended for publishing (see docs/splat.md, "Reduction and quality"): half the
#: gaussians (by significance over the training views, else opacity x area), SH degree 1, .spz.
RECOMMENDED_KEEP = DEFAULT_KEEP
RECOMMENDED_SH_DEGREE = PUBLISH_SH_DEGREE
RECOMMENDED_FORMAT = "spz"
#: The CLI's re-fit defaults (``reduce --refit-steps/--refit-seconds``): at most this many steps,
#: and a time budget of RECOMMENDED_REFIT_SECONDS per REFIT_BUDGET_GAUSSIANS gaussians of the input
#: (never less than that, never more than RECOMMENDED_REFIT_MAX_SECONDS); the best step on
#: held-out views is kept (docs/splat.md, "Reduction and quality").
RECOMMENDED_REFIT_STEPS = 1000
RECOMMENDED_REFIT_SECONDS = 120.0
REFIT_BUDGET_GAUSSIANS = 62_500
RECOMMENDED_REFIT_MAX_SECONDS = 600.0

log = logging.getLogger(__name__)

#: How the count is reached: ``merge`` neighbours (moment matching, :mod:`.merge`; the default:
#: it keeps coverage that pruning loses, +3 to +6 dB on real scenes) or ``prune`` by importance.
STRATEGIES = ("merge", "prune")

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: called as the slow stages (scoring views) advance."""


@dataclass
class ReduceReport:
    """What :func:`reduce_splat` did."""

    count_before: int
    count_after: int
    sh_degree_before: int
    sh_degree_after: int
    importance_method: str
    removed: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    refit: dict[str, object] | None = None  # RefitResult.to_dict() when a re-fit ran
    notes: list[str] = field(default_factory=list)  # what a person should know (said once each)

    @property
    def kept_fraction(self) -> float:
        return self.count_after / self.count_before if self.count_before else 1.0

    def to_dict(self) -> dict[str, object]:
        return {
            "count_before": self.count_before,
            "count_after": self.count_after,
            "kept_fraction": round(self.kept_fraction, 6),
            "sh_degree_before": self.sh_degree_before,
            "sh_degree_after": self.sh_degree_after,
            "importance_method": self.importance_method,
            "removed": dict(self.removed),
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
            "refit": self.refit,
            "notes": list(self.notes),
        }


def recommended_refit_seconds(count: int) -> float:
    """The default re-fit budget (CLI and trainer) for an input of ``count`` gaussians.

    It grows with the input because the cost of a step and of a target render does: on a 500k-gaussian model a
    target render and a step take seconds each on a laptop's CPU, so a fixed 120 s bought it a
    handful of steps (+0.2 dB over the peer at keep 0.5) where 420 s bought 48 (+1.65 dB;
    docs/benchmarks.md). 120 s per 62,500 gaussians (it was per 125,000) because the biker and
    the logo reach 15x smaller at 40 dB with about that budget and fell short with half of it; a
    re-fit that converges sooner stops on its own."""
    scaled = RECOMMENDED_REFIT_SECONDS * count / REFIT_BUDGET_GAUSSIANS
    return min(RECOMMENDED_REFIT_MAX_SECONDS, max(RECOMMENDED_REFIT_SECONDS, scaled))


def _resolve_cameras(cameras: Sequence[Camera] | str | Path | None) -> list[Camera] | None:
    if cameras is None:
        return None
    if isinstance(cameras, str | Path):
        from foto3d.libs.splat.cameras import load_cameras

        return load_cameras(cameras)
    return list(cameras)


def reduce_splat(
    splat: Splat,
    *,
    keep: float | None = RECOMMENDED_KEEP,
    count: int | None = None,
    sh_degree: int | None = None,
    min_opacity: float | None = None,
    remove_floaters: bool = False,
    cameras: Sequence[Camera] | str | Path | None = None,
    progress: Progress | None = None,
    importance_method: str = "auto",
    floater_options: FloaterOptions | None = None,
    up: str = "z",
    strategy: str = "merge",
    refit_steps: int = 0,
    refit_seconds: float | None = None,
) -> tuple[Splat, ReduceReport]:
    """Reduce ``splat``; returns the new splat and a report.

    - ``keep``: fraction of the *input* count to keep (0 < keep <= 1); ignored when ``count`` is set.
      None with no ``count`` = no importance pruning.
    - ``count``: absolute number of gaussians to keep.
    - ``sh_degree``: lower the SH degree to this (0..3); a higher value than the input's is a no-op.
    - ``min_opacity``: drop gaussians whose opacity (0..1) is below this first.
    - ``remove_floaters``: drop floaters (see :mod:`.floaters`).
    - ``cameras``: training cameras (list or path to nerfstudio ``transforms.json``) for
      LightGaussian's global significance.
    - ``importance_method``: ``auto`` (``views`` over the training cameras when given, else
      ``area``), or one of :data:`.importance.METHODS` (``views`` without cameras uses orbit views).
    - ``up``: the scene's up axis, for placing orbit cameras (nerfstudio .ply: z).
    - ``strategy``: ``merge`` (default) or ``prune`` (see :data:`STRATEGIES`); importance
      scores choose what pruning drops.
    - ``refit_steps``: at most this many gradient steps re-fitting the result to the
      original's renders (:mod:`.refit`); 0 = none. The best step on held-out views is kept,
      so the re-fit never returns something that scores worse there. Without torch the
      un-refitted result is returned and ``report.notes`` says so.
    - ``refit_seconds``: time budget of the re-fit (None = only ``refit_steps`` limits it).

    Raises ValueError for out-of-range options.
    """
    if count is not None and count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    if count is None and keep is not None and not 0.0 < keep <= 1.0:
        raise ValueError(f"keep must be a fraction in (0, 1], got {keep}")
    if sh_degree is not None and sh_degree not in (0, 1, 2, 3):
        raise ValueError(f"SH degree must be 0..3, got {sh_degree}")
    if min_opacity is not None and not 0.0 <= min_opacity < 1.0:
        raise ValueError(f"min opacity must be in [0, 1), got {min_opacity}")
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r} (choose from {', '.join(STRATEGIES)})")
    if refit_steps < 0:
        raise ValueError(f"refit steps must be >= 0, got {refit_steps}")
    if refit_seconds is not None and not refit_seconds > 0:
        raise ValueError(f"refit seconds must be > 0, got {refit_seconds}")
    cams = _resolve_cameras(cameras)
    picked = _pick_method(importance_method, cams)  # checked even when merging: a typo is an error
    method = "merge" if strategy == "merge" else picked

    n0 = splat.count
    report = ReduceReport(n0, n0, splat.sh_degree, splat.sh_degree, method)
    alive = np.ones(n0, bool)

    def drop(reason: str, mask: np.ndarray) -> None:
        hit = mask & alive
        if hit.any():
            report.removed[reason] = report.removed.get(reason, 0) + int(hit.sum())
            alive[hit] = False

    t = time.perf_counter()
    drop("invalid", splat.nonfinite_rows() | splat.zero_quat_rows())
    if min_opacity is not None:
        drop("low_opacity", sigmoid(splat.opacities) < min_opacity)
    report.timings["filter"] = time.perf_counter() - t
    if remove_floaters:
        t = time.perf_counter()
        idx = np.flatnonzero(alive)
        for reason, mask in find_floaters(splat.subset(idx), floater_options).items():
            full = np.zeros(n0, bool)
            full[idx[mask]] = True
            drop(reason, full)
        report.timings["floaters"] = time.perf_counter() - t

    target = count if count is not None else (round(keep * n0) if keep is not None else None)
    n_alive = int(alive.sum())
    merged: Splat | None = None
    if target is not None and n_alive > target and strategy == "merge":
        t = time.perf_counter()
        stage_cb = None if progress is None else (lambda done, total: progress("merging", done, total))
        merged = merge_to_count(splat.subset(np.flatnonzero(alive)), target, progress=stage_cb)
        # Merged output has no order of its own: a Morton (Z-curve) order puts neighbours next to
        # each other, which the compressed formats (spz's gzip) store 0.1-0.2 % smaller.
        merged = merged.subset(morton_order(merged.means))
        report.removed["merged"] = n_alive - merged.count
        report.timings["merge"] = time.perf_counter() - t
    elif target is not None and n_alive > target:
        t = time.perf_counter()
        idx = np.flatnonzero(alive)
        sub = splat.subset(idx)
        stage_cb = None if progress is None else (lambda done, total: progress("scoring views", done, total))
        score = importance(sub, method, cameras=cams, up=up, progress=stage_cb)
        # argpartition finds the top `target` in linear time; ties are broken by index, stable.
        order = np.argpartition(-score, target - 1)[:target] if target > 0 else np.zeros(0, np.int64)
        keep_mask = np.zeros(n0, bool)
        keep_mask[idx[order]] = True
        drop("low_importance", alive & ~keep_mask)
        report.timings["importance"] = time.perf_counter() - t

    t = time.perf_counter()
    out = merged if merged is not None else splat.subset(np.flatnonzero(alive))
    if sh_degree is not None and sh_degree < out.sh_degree:
        # Truncation is the least-squares fit of the lower degree over all directions (the SH
        # bands are orthogonal), so there is nothing better to distil without views.
        out = out.with_sh_degree(sh_degree)
    report.timings["assemble"] = time.perf_counter() - t
    # Re-fit only what changed: fewer gaussians, or a lower SH degree (then the fit distils the
    # dropped bands' view-dependent colour into the kept ones, against the original's renders).
    if refit_steps and out.count and (out.count < splat.count or out.sh_degree < splat.sh_degree):
        out = _refit(splat, out, up, refit_steps, refit_seconds, progress, report)
    report.count_after = out.count
    # An empty splat has no SH arrays to tell its degree: report the degree asked for.
    target_deg = splat.sh_degree if sh_degree is None else min(sh_degree, splat.sh_degree)
    report.sh_degree_after = out.sh_degree if out.count else target_deg
    return out, report


def _refit(
    splat: Splat,
    out: Splat,
    up: str,
    steps: int,
    seconds: float | None,
    progress: Progress | None,
    report: ReduceReport,
) -> Splat:
    try:
        from foto3d.libs.splat.refit import RefitOptions, refit
    except ImportError:
        note = "re-fit skipped: it needs torch (pip install 'foto3d[quality]'); the result is merged only"
        log.warning(note)
        report.notes.append(note)
        return out
    t = time.perf_counter()
    stage_cb = None if progress is None else (lambda done, total: progress("re-fitting", done, total))
    valid = splat.subset(np.flatnonzero(~(splat.nonfinite_rows() | splat.zero_quat_rows())))
    result = refit(valid, out, up=up, options=RefitOptions(steps=steps, seconds=seconds), progress=stage_cb)
    report.refit = result.to_dict()
    report.timings["refit"] = time.perf_counter() - t
    return result.splat


def _pick_method(method: str, cams: list[Camera] | None) -> str:
    from foto3d.libs.splat.importance import METHODS

    if method == "auto":
        # Measured (docs/benchmarks.md): with only orbit views, opacity x area keeps more of the
        # picture than orbit-view significance on dense scenes and is ~20x faster; real training
        # views are what make global significance worth its cost.
        return "views" if cams is not None else "area"
    if method not in METHODS:
        raise ValueError(f"unknown importance method {method!r} (choose from auto, {', '.join(METHODS)})")
    return method
