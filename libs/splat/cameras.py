"""Cameras: the pinhole model every renderer call takes, and training cameras from a nerfstudio dataset, for LightGaussian-style significance.

Reads ``transforms.json`` (camera-to-world matrices in OpenGL axes: x right, y up, z back;
intrinsics ``fl_x, fl_y, cx, cy, w, h`` at the top level or per frame). nerfstudio trains in a
normalised frame: when its ``dataparser_transforms.json`` (a 3x4 ``transform`` and a ``scale``)
is given or sits next to ``transforms.json``, the poses are mapped into that frame, which is the
frame ``ns-export gaussian-splat`` writes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from foto3d.libs.splat.errors import SplatFormatError


@dataclass(frozen=True)
class Camera:
    """A pinhole camera: world-to-camera 4x4 matrix (OpenCV axes) and intrinsics in pixels."""

    viewmat: npt.NDArray[np.float64]
    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    @property
    def position(self) -> npt.NDArray[np.float64]:
        """Camera centre in world coordinates."""
        r = self.viewmat[:3, :3]
        t = self.viewmat[:3, 3]
        return np.asarray(-r.T @ t, dtype=np.float64)

    def resized(self, width: int, height: int) -> Camera:
        """The same view at another image size (intrinsics scaled)."""
        sx, sy = width / self.width, height / self.height
        return Camera(self.viewmat, self.fx * sx, self.fy * sy, self.cx * sx, self.cy * sy, width, height)


_FLIP_GL_TO_CV = np.diag([1.0, -1.0, -1.0, 1.0])


def _intrinsic(frame: dict[str, Any], top: dict[str, Any], key: str) -> float:
    value = frame.get(key, top.get(key))
    if value is None:
        raise SplatFormatError(f"camera intrinsics: {key!r} missing in transforms.json")
    return float(value)


def load_cameras(
    path: str | Path, *, dataparser: str | Path | None = None, max_size: int | None = 256
) -> list[Camera]:
    """Cameras of every frame, optionally scaled so the longer image side is ``max_size``."""
    p = Path(path)
    if p.is_dir():
        p = p / "transforms.json"
    try:
        doc = json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        raise SplatFormatError(f"{p}: cannot read cameras: {exc}") from exc
    frames = doc.get("frames") if isinstance(doc, dict) else None
    if not frames:
        raise SplatFormatError(f"{p}: no 'frames' with camera poses")
    dp = Path(dataparser) if dataparser else p.parent / "dataparser_transforms.json"
    norm = np.eye(4)
    scale = 1.0
    if dp.exists():
        try:
            d = json.loads(dp.read_text())
            norm[:3, :] = np.asarray(d["transform"], np.float64).reshape(3, 4)
            scale = float(d.get("scale", 1.0))
        except (OSError, ValueError, KeyError) as exc:
            raise SplatFormatError(f"{dp}: not a nerfstudio dataparser_transforms.json: {exc}") from exc
    elif dataparser:
        raise SplatFormatError(f"{dp}: no such file")
    cams = []
    for i, fr in enumerate(frames):
        try:
            c2w = np.asarray(fr["transform_matrix"], np.float64).reshape(4, 4)
        except (KeyError, ValueError) as exc:
            raise SplatFormatError(f"{p}: frame {i} has no valid 4x4 transform_matrix") from exc
        c2w = norm @ c2w
        c2w[:3, 3] *= scale
        c2w = c2w @ _FLIP_GL_TO_CV
        w2c = np.asarray(np.linalg.inv(c2w), np.float64)
        cam = Camera(
            w2c,
            _intrinsic(fr, doc, "fl_x"),
            _intrinsic(fr, doc, "fl_y"),
            _intrinsic(fr, doc, "cx"),
            _intrinsic(fr, doc, "cy"),
            int(_intrinsic(fr, doc, "w")),
            int(_intrinsic(fr, doc, "h")),
        )
        if max_size and max(cam.width, cam.height) > max_size:
            f = max_size / max(cam.width, cam.height)
            cam = cam.resized(max(1, round(cam.width * f)), max(1, round(cam.height * f)))
        cams.append(cam)
    return cams
