"""Which side of the object the viewer opens on when staff saved no view.

A fixed azimuth faces the back of every object that happened to be captured the other way
round (the biker, framed from behind). The data says where the front is:

1. the training cameras: a photographer (or a rig's turntable start) spends most shots on the
   side that matters, so the side of the object the most cameras looked at is its face. The
   trainer records it on each splat artifact (``Artifact.front_azimuth``) from the dataset's
   ``transforms.json``, mapped into the export's frame by nerfstudio's
   ``dataparser_transforms.json``;
2. else the splat itself: the side holding the most *fine* gaussians (at most the median size),
   since a side the cameras saw well is resolved into many small splats and an unseen one is a
   few large blurs;
3. else (an even, all-round capture of an object alike on all sides) the house default, 30°.

The side is the peak, to 5°, of the directions' density (smoothed with a cos² kernel half a
turn wide); it counts only if the quarter turn around it holds clearly more than its even share
(1.25×), so an all-round capture keeps the default rather than a coin toss. Azimuths are degrees
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
#: Cameras within this angle of straight above or below the centre say nothing about a side.
STEEP_DEG = 75.0


def preferred_azimuth(azimuths_deg: npt.ArrayLike) -> float | None:
    """The direction ``azimuths_deg`` crowd towards most: the peak of their density smoothed by a
    cos² kernel a half turn wide (its middle half is a quarter turn), found to 5°; None
    when there are none or the quarter turn around the peak holds no clear lead."""
    a = np.asarray(azimuths_deg, dtype=np.float64).reshape(-1)
    a = a[np.isfinite(a)]
    if a.size == 0:
        return None
    centres = np.arange(0.0, 360.0, STEP_DEG)
    offset = np.radians((a[None, :] - centres[:, None] + 180.0) % 360.0 - 180.0)
    # smooth, so that the peak of an even arc is its middle, not whichever edge counts one more
    score = np.where(np.abs(offset) < math.pi / 2, np.cos(offset) ** 2, 0.0).sum(axis=1)
    peak = float(centres[int(np.argmax(score))])
    near = np.abs((a - peak + 180.0) % 360.0 - 180.0) <= SIDE_DEG / 2
    if int(near.sum()) < CLEAR_LEAD * a.size * SIDE_DEG / 360.0:
        return None
    return peak


def _azimuths(points_upright: npt.NDArray[np.float64], center: npt.ArrayLike) -> npt.NDArray[np.float64]:
    rel = points_upright - np.asarray(center, dtype=np.float64)
    horizontal = np.hypot(rel[:, 0], rel[:, 2])
    steep = np.abs(rel[:, 1]) > horizontal * math.tan(math.radians(STEEP_DEG))
    az = np.degrees(np.arctan2(rel[:, 0], rel[:, 2]))
    return np.asarray(az[~steep & (horizontal > 0)], dtype=np.float64)


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
    """The side holding the most fine gaussians (reasonably opaque, at most the median size)
    around ``center`` (in the splat's frame, whose up axis is ``up``); None when no side leads."""
    if splat.count == 0:
        return None
    opaque = splat.activated_opacities() > 0.1
    if int(opaque.sum()) < 16:
        return None
    size = splat.scales[opaque].max(axis=1)  # log scale: the order is all that matters
    fine = size <= np.median(size)
    pts = to_upright(splat.means[opaque][fine], up)
    return preferred_azimuth(_azimuths(pts, to_upright(center, up)[0]))
