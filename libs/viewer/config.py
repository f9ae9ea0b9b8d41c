"""The viewer config published next to a splat: default camera, bounds and file links.

The default camera frames the splat's *robust* bounds (percentiles of the centres of
reasonably opaque gaussians), so a few floaters far away do not shrink the object to a
dot. It looks at the centre from a three-quarter view above the object.
"""

from __future__ import annotations

import math

import msgspec
import numpy as np
import numpy.typing as npt

from foto3d.libs.splat.model import Splat

CONFIG_VERSION = 1
DEFAULT_FOV_DEG = 50.0
VIEW_DIRECTION = np.array([0.55, 0.45, 1.0])  # from the target towards the camera, before scaling
UP = (0.0, 1.0, 0.0)


class Bounds(msgspec.Struct, frozen=True, kw_only=True):
    min: list[float]
    max: list[float]
    center: list[float]
    radius: float


class Camera(msgspec.Struct, frozen=True, kw_only=True):
    position: list[float]
    target: list[float]
    up: list[float]
    fov: float
    near: float
    far: float


class ViewerFile(msgspec.Struct, frozen=True, kw_only=True):
    format: str
    url: str
    bytes: int
    sha256: str


class ViewerConfig(msgspec.Struct, frozen=True, kw_only=True):
    version: int
    object_id: str
    name: str
    model_version: int
    gaussians: int
    camera: Camera
    bounds: Bounds
    files: list[ViewerFile]
    thumbnail: str = ""


def robust_bounds(splat: Splat, lo: float = 2.0, hi: float = 98.0) -> Bounds:
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


def default_camera(bounds: Bounds, fov_deg: float = DEFAULT_FOV_DEG) -> Camera:
    center = np.asarray(bounds.center, dtype=np.float64)
    distance = bounds.radius / math.tan(math.radians(fov_deg) / 2) * 1.15
    direction = VIEW_DIRECTION / np.linalg.norm(VIEW_DIRECTION)
    position = center + direction * distance
    return Camera(
        position=_r(position),
        target=_r(center),
        up=list(UP),
        fov=fov_deg,
        near=round(max(distance - 3 * bounds.radius, distance * 0.01), 5),
        far=round(distance + 4 * bounds.radius, 5),
    )


def build_viewer_config(
    splat: Splat | None,
    *,
    object_id: str,
    name: str,
    model_version: int,
    files: list[ViewerFile],
    thumbnail: str = "",
) -> ViewerConfig:
    if splat is not None:
        bounds = robust_bounds(splat)
        gaussians = splat.count
    else:  # no readable splat (e.g. only a format we cannot parse): a unit box
        bounds = Bounds(min=[-1.0] * 3, max=[1.0] * 3, center=[0.0] * 3, radius=math.sqrt(3))
        gaussians = 0
    return ViewerConfig(
        version=CONFIG_VERSION,
        object_id=object_id,
        name=name,
        model_version=model_version,
        gaussians=gaussians,
        camera=default_camera(bounds),
        bounds=bounds,
        files=files,
        thumbnail=thumbnail,
    )


def _r(v: npt.ArrayLike) -> list[float]:
    return [round(float(x), 5) for x in np.asarray(v).reshape(-1)]
