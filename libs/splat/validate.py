"""Checks on decoded splats, and the repairs ``--repair`` applies.

A file can be well-formed yet unusable: NaN/Inf values poison renderers and bounds, a zero
quaternion has no rotation, and a log-scale of 80 makes one gaussian cover the whole scene.
Reading refuses such data unless asked to repair it; a repair says exactly what it changed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from foto3d.libs.splat.errors import SplatFormatError
from foto3d.libs.splat.model import Splat

log = logging.getLogger("foto3d.splat")

#: Log-scales outside this range are not a trained scene (exp(12) ≈ 160 000 scene units).
LOG_SCALE_MIN = -20.0
LOG_SCALE_MAX = 12.0

#: Infinite opacity logits (PlayCanvas' decoder writes +inf for alpha 255) are clamped to this
#: magnitude: sigmoid(13.8) = 1 - 1e-6, more opaque than any renderer's 0.999 alpha cap.
OPACITY_LOGIT_LIMIT = 13.8


def clamp_infinite_opacities(splat: Splat, source: str) -> Splat:
    """Clamp ±inf opacity logits (rows otherwise finite) and say so once; NaN stays an error."""
    inf = np.isinf(splat.opacities)
    if not inf.any():
        return splat
    out = splat.copy()
    np.clip(out.opacities, -OPACITY_LOGIT_LIMIT, OPACITY_LOGIT_LIMIT, out=out.opacities)
    log.warning(
        "%s: clamped %d infinite opacity logit(s) to ±%g (fully opaque/transparent, as "
        "PlayCanvas' tools write them)",
        source,
        int(inf.sum()),
        OPACITY_LOGIT_LIMIT,
    )
    return out


@dataclass
class Report:
    """What is wrong with a splat (counts per problem) and, after repair, what was done."""

    nonfinite: int = 0
    zero_quats: int = 0
    absurd_scales: int = 0
    actions: list[str] = field(default_factory=list)

    @property
    def fatal(self) -> bool:
        return bool(self.nonfinite or self.zero_quats)

    def problems(self) -> list[str]:
        out = []
        if self.nonfinite:
            out.append(f"{self.nonfinite} gaussian(s) with NaN/Inf values")
        if self.zero_quats:
            out.append(f"{self.zero_quats} gaussian(s) with a zero-length rotation quaternion")
        if self.absurd_scales:
            out.append(
                f"{self.absurd_scales} gaussian(s) with a log-scale outside "
                f"[{LOG_SCALE_MIN:g}, {LOG_SCALE_MAX:g}]"
            )
        return out


def check(splat: Splat) -> Report:
    bad = splat.nonfinite_rows()
    ok = ~bad
    zero = splat.zero_quat_rows() & ok
    with np.errstate(invalid="ignore"):
        absurd = ((splat.scales < LOG_SCALE_MIN) | (splat.scales > LOG_SCALE_MAX)).any(axis=1) & ok
    return Report(int(bad.sum()), int(zero.sum()), int(absurd.sum()))


def repair(splat: Splat) -> tuple[Splat, Report]:
    """Drop NaN/Inf rows, give zero quaternions the identity rotation, clamp absurd log-scales."""
    report = check(splat)
    out = splat
    if report.nonfinite:
        out = out.subset(~out.nonfinite_rows())
        report.actions.append(f"dropped {report.nonfinite} gaussian(s) with NaN/Inf values")
    if report.zero_quats:
        out = out if out is not splat else out.copy()
        zero = out.zero_quat_rows()
        out.quats[zero] = (1.0, 0.0, 0.0, 0.0)
        report.actions.append(f"set {report.zero_quats} zero quaternion(s) to the identity rotation")
    if report.absurd_scales:
        out = out if out is not splat else out.copy()
        np.clip(out.scales, LOG_SCALE_MIN, LOG_SCALE_MAX, out=out.scales)
        report.actions.append(
            f"clamped the log-scales of {report.absurd_scales} gaussian(s) to "
            f"[{LOG_SCALE_MIN:g}, {LOG_SCALE_MAX:g}]"
        )
    return out, report


def validate(splat: Splat, source: str, *, repair_it: bool) -> Splat:
    """Return the splat (repaired if asked, with a warning) or raise SplatFormatError if unusable.

    Infinite opacity logits are clamped in either case (see :func:`clamp_infinite_opacities`)."""
    splat = clamp_infinite_opacities(splat, source)
    if not repair_it:
        report = check(splat)
        if report.fatal:
            raise SplatFormatError(
                f"{source}: " + "; ".join(report.problems()) + " (use --repair to drop/fix them)"
            )
        if report.absurd_scales:
            log.warning("%s: %s", source, report.problems()[-1])
        return splat
    fixed, report = repair(splat)
    for action in report.actions:
        log.warning("%s: repaired: %s", source, action)
    return fixed
