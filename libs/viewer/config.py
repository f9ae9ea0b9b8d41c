"""The defaults the publisher writes into ``viewer.json``: robust bounds, a camera, file up axes.

The schema lives in ``proto/viewer.py``; this module computes values for it from a splat. The
default camera frames the splat's *robust* bounds (percentiles of the centres of reasonably
opaque gaussians), so a few floaters far away do not shrink the object to a dot, from a little
above, at the distance where the bounds' sphere fits the frame whatever the orbit angle (the
same rule as the browser's ``framing.js``), on the side the data says is the front
(``opening.py``: where the training cameras looked most, else the side with the most detail).
"""

from __future__ import annotations

import math
from typing import cast

import numpy as np
import numpy.typing as npt

from foto3d.libs.splat.coords import rotation_between
from foto3d.libs.splat.formats import registry as splat_formats
from foto3d.libs.splat.model import Splat
from foto3d.libs.viewer.opening import detail_azimuth
from foto3d.proto.jobs import UpAxis
from foto3d.proto.viewer import (
    CONFIG_VERSION,
    Bounds,
    Camera,
    ViewerConfig,
    ViewerFile,
    ViewerSettings,
)

DEFAULT_FOV_DEG = 40.0
DEFAULT_AZIMUTH_DEG = 30.0
DEFAULT_ELEVATION_DEG = 18.0
FIT_MARGIN = 1.12
#: nerfstudio's exports, and so every file the trainer writes, hold +Z-up data in memory.
TRAINER_UP: UpAxis = "z"
UP = (0.0, 1.0, 0.0)

__all__ = [
    "CONFIG_VERSION",
    "Bounds",
    "Camera",
    "ViewerConfig",
    "ViewerFile",
    "build_viewer_config",
    "decoded_up",
    "default_camera",
    "file_up",
    "robust_bounds",
    "upright_bounds",
]


def file_up(fmt: str, memory_up: UpAxis = TRAINER_UP) -> UpAxis:
    """The up axis as stored (the renderer's view) of a ``fmt`` file written from data that was
    ``memory_up`` when written: the format registry's storage turn (only ``.spz`` is stored in
    another frame than it decodes into). The default is for artifacts of trainers that did not
    record ``Artifact.up`` yet: they wrote every format from nerfstudio's +Z-up data."""
    return cast(UpAxis, splat_formats.get(fmt).stored_up(memory_up))


def decoded_up(fmt: str, stored: UpAxis) -> UpAxis:
    """The up axis of a ``fmt`` file's data as our reader decodes it, for a file stored ``stored``."""
    return cast(UpAxis, splat_formats.get(fmt).decoded_up(stored))


def robust_bounds(splat: Splat, lo: float = 2.0, hi: float = 98.0) -> Bounds:
    """Bounds in the splat's own frame."""
    means = splat.means
    if splat.count == 0:
        return Bounds(min=[-1.0] * 3, max=[1.0] * 3, center=[0.0] * 3, radius=math.sqrt(3))
    opaque = splat.activated_opacities() > 0.1
    pts = means[opaque] if int(opaque.sum()) >= max(16, splat.count // 20) else means
    finite = np.isfinite(pts).all(axis=1)
    pts = pts[finite] if finite.any() else np.zeros((1, 3), np.float32)
    mn = np.percentile(pts, lo, axis=0)
    mx = np.percentile(pts, hi, axis=0)
    center = (mn + mx) / 2
    radius = max(float(np.linalg.norm(mx - mn)) / 2, 1e-3)
    return Bounds(min=_r(mn), max=_r(mx), center=_r(center), radius=round(radius, 5))


def upright_bounds(bounds: Bounds, up: UpAxis) -> Bounds:
    """``bounds`` of data whose up axis is ``up``, turned into the upright (+Y up) frame."""
    rot = rotation_between(up, "y")
    corners = np.array([bounds.min, bounds.max]) @ rot.T
    return Bounds(
        min=_r(corners.min(axis=0)),
        max=_r(corners.max(axis=0)),
        center=_r(rot @ np.asarray(bounds.center)),
        radius=bounds.radius,
    )


def fit_distance(radius: float, fov_deg: float = DEFAULT_FOV_DEG) -> float:
    """Camera distance at which a sphere of ``radius`` fits a landscape frame's height."""
    return radius * FIT_MARGIN / math.sin(math.radians(fov_deg) / 2)


def default_camera(
    bounds: Bounds,
    fov_deg: float = DEFAULT_FOV_DEG,
    rotation: list[float] | None = None,
    up: tuple[float, float, float] = UP,
    azimuth_deg: float = DEFAULT_AZIMUTH_DEG,
) -> Camera:
    """The default view of upright ``bounds`` (optionally turned by the reviewer's ``rotation``)
    from ``azimuth_deg`` about the upright object (the reviewer's turn turns that side too)."""
    center = np.asarray(bounds.center, dtype=np.float64)
    if rotation:
        turn = euler_xyz(rotation)
        center = turn @ center
        a = math.radians(azimuth_deg)
        side = turn @ np.array([math.sin(a), 0.0, math.cos(a)])
        azimuth_deg = math.degrees(math.atan2(side[0], side[2]))
    up_v = np.asarray(up, dtype=np.float64)
    up_v /= np.linalg.norm(up_v)
    # a horizontal reference perpendicular to up, then azimuth about up and elevation towards it
    ref = np.array([0.0, 0.0, 1.0]) if abs(up_v[2]) < 0.9 else np.array([0.0, -1.0, 0.0])
    forward = ref - (ref @ up_v) * up_v
    forward /= np.linalg.norm(forward)
    side = np.cross(up_v, forward)
    az, el = math.radians(azimuth_deg), math.radians(DEFAULT_ELEVATION_DEG)
    direction = math.cos(el) * (math.cos(az) * forward + math.sin(az) * side) + math.sin(el) * up_v
    distance = fit_distance(bounds.radius, fov_deg)
    position = center + direction * distance
    return Camera(
        position=_r(position),
        target=_r(center),
        up=_r(up_v),
        fov=fov_deg,
        near=round(max(distance - 3 * bounds.radius, distance * 0.01), 5),
        far=round(distance + 4 * bounds.radius, 5),
    )


def euler_xyz(degrees: list[float]) -> npt.NDArray[np.float64]:
    """The rotation matrix of three.js's Euler(x, y, z, "XYZ"): R = Rx · Ry · Rz."""
    x, y, z = (math.radians(d) for d in degrees)
    rx = np.array([[1, 0, 0], [0, math.cos(x), -math.sin(x)], [0, math.sin(x), math.cos(x)]])
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rz = np.array([[math.cos(z), -math.sin(z), 0], [math.sin(z), math.cos(z), 0], [0, 0, 1]])
    return np.asarray(rx @ ry @ rz, dtype=np.float64)


def build_viewer_config(
    splat: Splat | None,
    *,
    object_id: str,
    name: str,
    model_version: int,
    files: list[ViewerFile],
    thumbnail: str = "",
    settings: ViewerSettings | None = None,
    memory_up: UpAxis = TRAINER_UP,
    front_azimuth: float | None = None,
) -> ViewerConfig:
    """``viewer.json``: computed defaults, then the reviewer's saved ``settings`` on top.

    A saved camera replaces the default one; every other saved field is copied as is. Without
    one the camera opens on ``front_azimuth`` (the trainer's record of where its cameras looked
    most), else on the side of ``splat`` with the most detail, else at the default azimuth."""
    s = settings or ViewerSettings()
    azimuth = front_azimuth
    if splat is not None:
        own = robust_bounds(splat)
        bounds = upright_bounds(own, memory_up)
        gaussians = splat.count
        if azimuth is None and s.camera is None:
            azimuth = detail_azimuth(splat, memory_up, own.center)
    else:  # no readable splat (e.g. only a format we cannot parse): a unit box
        bounds = Bounds(min=[-1.0] * 3, max=[1.0] * 3, center=[0.0] * 3, radius=math.sqrt(3))
        gaussians = 0
    return ViewerConfig(
        version=CONFIG_VERSION,
        object_id=object_id,
        name=name,
        model_version=model_version,
        gaussians=gaussians,
        camera=s.camera
        or default_camera(
            bounds, rotation=s.rotation, azimuth_deg=DEFAULT_AZIMUTH_DEG if azimuth is None else azimuth
        ),
        bounds=bounds,
        files=files,
        thumbnail=thumbnail,
        up=s.up,
        rotation=s.rotation,
        limits=s.limits,
        background=s.background,
        auto_rotate=s.auto_rotate,
        ui=s.ui,
        hotspots=s.hotspots,
    )


def _r(v: npt.ArrayLike) -> list[float]:
    return [round(float(x), 5) for x in np.asarray(v).reshape(-1)]
