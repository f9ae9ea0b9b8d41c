"""Which side of the object the viewer opens on when staff saved no view.

A fixed azimuth faces the back of every object that happened to be captured the other way
round (the biker, framed from behind). The data says where the front is:

1. the training cameras: a photographer (or a rig's turntable start) spends most shots on the
   side that matters, so the side of the object the most cameras looked at is its face. The
   trainer records it on each splat artifact (``Artifact.front_azimuth``) from the dataset's
   ``transforms.json``, mapped into the export's frame by nerfstudio's
   ``dataparser_transforms.json``;
2. else the splat itself: the side whose gaussians are most often *fine* (at most the median
   size), since a side the cameras saw well is resolved into small splats and a side seen
   little into large blurs (a share, not a count, which would follow the object's shape);
3. else (an even, all-round capture of an object alike on all sides) the house default, 30°.

Sides are found to 5°, over histograms smoothed with a cos² kernel half a turn wide. The
cameras' side counts only if the quarter turn around it holds 1.25× its even share, the detail's
only if its share of fine gaussians is 1.1× the whole object's, so an even all-round capture
keeps the default rather than a coin toss. Azimuths are degrees
about +Y in the upright frame, 0 looking from +Z and 90 from +X (three.js, the viewer's
``camera.azimuth``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from foto3d.libs.splat.coords import rotation_between
from foto3d.libs.splat.model import Splat

SIDE_DEG = 90.0
#: The side is found to this step: coarse enough that one model's files, quantised differently
#: by each format, open on the same side.
STEP_DEG = 5.0
#: The best side must hold this many times its even share (a quarter) of the weight.
CLEAR_LEAD = 1.25
#: The finest side's share of fine gaussians must be this many times the whole object's.
DETAIL_LEAD = 1.1
#: Gaussians looked at for the detail (evenly spread over the file): plenty for shares per side.
MAX_DETAIL_SAMPLES = 250_000
#: Cameras and gaussians within this angle of straight above or below the centre say nothing about a side.
STEEP_DEG = 75.0


def _side_scores(
    azimuths_deg: npt.NDArray[np.float64], weights: npt.NDArray[np.float64] | None = None
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(side centres every STEP_DEG, the weight towards each): a histogram by the degree smoothed
    by a cos² kernel half a turn wide (its middle half is a quarter turn), so the peak of an
    even arc is its middle, not whichever edge counts one more; its cost does not grow with the
    number of points."""
    bins = np.bincount(np.round(azimuths_deg).astype(np.int64) % 360, weights=weights, minlength=360)
    offsets = np.arange(-89, 90)
    kernel = np.cos(np.radians(offsets)) ** 2
    centres = np.arange(0, 360, int(STEP_DEG))
    scores = (bins[(centres[:, None] + offsets[None, :]) % 360] * kernel).sum(axis=1)
    return centres.astype(np.float64), np.asarray(scores, dtype=np.float64)


def preferred_azimuth(azimuths_deg: npt.ArrayLike) -> float | None:
    """The direction ``azimuths_deg`` crowd towards most (the peak of their smoothed density, to
    5°); None when there are none or the quarter turn around the peak holds no clear lead."""
    a = np.asarray(azimuths_deg, dtype=np.float64).reshape(-1)
    a = a[np.isfinite(a)]
    if a.size == 0:
        return None
    centres, scores = _side_scores(a)
    peak = float(centres[int(np.argmax(scores))])
    near = np.abs((a - peak + 180.0) % 360.0 - 180.0) <= SIDE_DEG / 2
    if int(near.sum()) < CLEAR_LEAD * a.size * SIDE_DEG / 360.0:
        return None
    return peak


def _azimuths(points_upright: npt.NDArray[np.float64], center: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Azimuths (degrees) of the points around ``center``; NaN for those nearly straight above
    or below it, which belong to no side."""
    rel = points_upright - np.asarray(center, dtype=np.float64)
    horizontal = np.hypot(rel[:, 0], rel[:, 2])
    steep = (np.abs(rel[:, 1]) > horizontal * math.tan(math.radians(STEEP_DEG))) | (horizontal == 0)
    az = np.degrees(np.arctan2(rel[:, 0], rel[:, 2]))
    return np.asarray(np.where(steep, np.nan, az), dtype=np.float64)


def to_upright(points: npt.ArrayLike, up: str) -> npt.NDArray[np.float64]:
    """``points`` of data whose up axis is ``up``, in the upright (+Y up) frame."""
    return np.asarray(np.asarray(points, dtype=np.float64).reshape(-1, 3) @ rotation_between(up, "y").T)


def camera_azimuth(positions: Sequence[npt.ArrayLike], center: npt.ArrayLike, up: str) -> float | None:
    """The side the cameras at ``positions`` looked at most, seen from ``center`` (both in the
    frame of data whose up axis is ``up``); None when they favour no side."""
    if len(positions) == 0:
        return None
    pts = to_upright(np.asarray(positions, dtype=np.float64), up)
    return preferred_azimuth(_azimuths(pts, to_upright(center, up)[0]))


def detail_azimuth(splat: Splat, up: str, center: npt.ArrayLike) -> float | None:
    """The side whose gaussians are most often fine (at most the median size, among the
    reasonably opaque ones) around ``center`` (in the splat's frame, whose up axis is ``up``);
    None when no side leads by DETAIL_LEAD.

    A *share*, not a count: counts follow the object's shape (a person has most gaussians
    along the shoulders, i.e. at the sides), while the share of fine ones says how well each
    side was resolved."""
    if splat.count == 0:
        return None
    step = max(1, splat.count // MAX_DETAIL_SAMPLES)
    opaque = splat.activated_opacities()[::step] > 0.1
    if int(opaque.sum()) < 16:
        return None
    size = splat.scales[::step][opaque].max(axis=1)  # log scale: the order is all that matters
    az = _azimuths(to_upright(splat.means[::step][opaque], up), to_upright(center, up)[0])
    keep = np.isfinite(az)
    az, fine = az[keep], (size <= np.median(size))[keep].astype(np.float64)
    if az.size < 16:
        return None
    centres, everything = _side_scores(az)
    _, fine_scores = _side_scores(az, fine)
    # sides with few gaussians (an edge-on flat object) give noisy shares: they do not compete
    share = np.where(everything >= 0.2 * everything.max(), fine_scores / np.maximum(everything, 1e-12), 0.0)
    best = int(np.argmax(share))
    if share[best] < DETAIL_LEAD * float(fine.mean()):
        return None
    return float(centres[best])
