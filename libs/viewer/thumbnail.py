"""A small PNG preview of a splat: gaussians projected as soft dots in their DC colour.

Not a faithful render (no anisotropic footprints, no view-dependent colour): a quick,
dependency-free picture that tells a reviewer or a catalog page which object this is.
Points are drawn far to near with their opacity, at 2x and then averaged down.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from foto3d.libs.splat.coords import UP_AXES, rotation_between
from foto3d.libs.splat.model import Splat
from foto3d.libs.viewer.config import (
    DEFAULT_AZIMUTH_DEG,
    TRAINER_UP,
    Camera,
    default_camera,
    robust_bounds,
    upright_bounds,
)
from foto3d.libs.viewer.opening import detail_azimuth
from foto3d.libs.viewer.png import encode_png
from foto3d.proto.jobs import UpAxis

BACKGROUND = np.array([0.957, 0.961, 0.969])
MAX_POINTS = 300_000


def render_thumbnail(
    splat: Splat,
    size: int = 256,
    camera: Camera | None = None,
    seed: int = 0,
    up: UpAxis = TRAINER_UP,
    front_azimuth: float | None = None,
) -> bytes:
    """PNG bytes of a ``size`` x ``size`` preview; ``up`` is the splat's up axis in memory.
    Without a ``camera``, the view the viewer opens on (``front_azimuth``: the trainer's record of
    where its cameras looked most, else the side with the most detail), so the poster a visitor
    sees first shows the same side as the first frame."""
    return encode_png(render_rgb(splat, size, camera, seed, up, front_azimuth))


def opening_camera(splat: Splat, up: UpAxis = TRAINER_UP, front_azimuth: float | None = None) -> Camera:
    """The viewer's opening view of ``splat`` (no reviewer settings), in the splat's own frame."""
    own = robust_bounds(splat)
    azimuth = front_azimuth if front_azimuth is not None else detail_azimuth(splat, up, own.center)
    # chosen in the upright frame, where azimuths are defined, then turned back into the data's
    cam = default_camera(
        upright_bounds(own, up), azimuth_deg=DEFAULT_AZIMUTH_DEG if azimuth is None else azimuth
    )
    back = rotation_between(up, "y").T
    assert cam.position is not None and cam.target is not None

    def turn(v: list[float]) -> list[float]:
        return [float(x) for x in back @ np.asarray(v, dtype=np.float64)]

    return Camera(
        position=turn(cam.position), target=turn(cam.target), up=list(UP_AXES[up]), fov=cam.fov, near=cam.near
    )


def render_rgb(
    splat: Splat,
    size: int = 256,
    camera: Camera | None = None,
    seed: int = 0,
    up: UpAxis = TRAINER_UP,
    front_azimuth: float | None = None,
) -> npt.NDArray[np.uint8]:
    ss = 2
    res = size * ss
    img = np.tile(BACKGROUND, (res, res, 1))
    if splat.count == 0:
        return _to_u8(img, ss)
    cam = camera if camera is not None and camera.position and camera.target else None
    if cam is None:
        cam = opening_camera(splat, up, front_azimuth)
    assert cam.position is not None and cam.target is not None
    cam_up = cam.up or list(UP_AXES[up])
    fov = cam.fov or 40.0
    near = cam.near or 1e-3
    idx = np.arange(splat.count)
    if splat.count > MAX_POINTS:
        idx = np.random.default_rng(seed).choice(splat.count, MAX_POINTS, replace=False)
    pts = splat.means[idx].astype(np.float64)
    colors = splat.colors()[idx].astype(np.float64)
    alpha = splat.activated_opacities()[idx].astype(np.float64)
    scale = splat.activated_scales()[idx].astype(np.float64).mean(axis=1)

    pos = np.asarray(cam.position)
    fwd = np.asarray(cam.target) - pos
    fwd /= np.linalg.norm(fwd) or 1.0
    right = np.cross(fwd, np.asarray(cam_up))
    right /= np.linalg.norm(right) or 1.0
    cam_y = np.cross(right, fwd)
    rel = pts - pos
    x, y, z = rel @ right, rel @ cam_y, rel @ fwd
    focal = (res / 2) / math.tan(math.radians(fov) / 2)
    keep = (z > near * 0.5) & np.isfinite(x) & np.isfinite(y) & (alpha > 0.02)
    px = np.round(focal * x[keep] / z[keep] + res / 2).astype(np.int64)
    py = np.round(res / 2 - focal * y[keep] / z[keep]).astype(np.int64)
    radius = np.clip(focal * scale[keep] / z[keep], 0.6, 4.0)
    zk, ck, ak = z[keep], colors[keep], np.clip(alpha[keep], 0.0, 1.0)
    order = np.argsort(-zk, kind="stable")  # far first, near last (painter's order)
    px, py, radius, ck, ak = px[order], py[order], radius[order], ck[order], ak[order]
    rmax = math.ceil(float(radius.max())) if radius.size else 1
    for dy in range(-rmax, rmax + 1):
        for dx in range(-rmax, rmax + 1):
            dist = math.hypot(dx, dy)
            sel = radius >= dist
            if not sel.any():
                continue
            qx, qy = px[sel] + dx, py[sel] + dy
            inside = (qx >= 0) & (qx < res) & (qy >= 0) & (qy < res)
            qx, qy = qx[inside], qy[inside]
            a = (ak[sel][inside] * (1.0 - 0.5 * dist / (rmax + 1)))[:, None]
            img[qy, qx] = img[qy, qx] * (1 - a) + ck[sel][inside] * a
    return _to_u8(img, ss)


def _to_u8(img: npt.NDArray[np.float64], ss: int) -> npt.NDArray[np.uint8]:
    h, w, _ = img.shape
    small = img.reshape(h // ss, ss, w // ss, ss, 3).mean(axis=(1, 3))
    out: npt.NDArray[np.uint8] = np.clip(small * 255 + 0.5, 0, 255).astype(np.uint8)
    return out
