"""antimatter15 ``.splat``: 32 bytes per gaussian, no header, no higher-order SH.

Record: position 3×f32, linear scale 3×f32, colour RGBA u8 (RGB = clip(0.5 + SH_C0·f_dc),
A = sigmoid(opacity)), rotation 4×u8 (unit quaternion w,x,y,z mapped by q·128 + 128).
Quantisation: colour and alpha 1/255 (half that after rounding), quaternion components 1/128;
positions and scales are exact float32; colours outside [0, 1] are clipped; SH rest is dropped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from foto3d.libs.splat.errors import SplatFormatError
from foto3d.libs.splat.formats.base import SplatFormat
from foto3d.libs.splat.model import Splat, logit, normalize_quats, rgb_to_sh0, sh0_to_rgb, sigmoid

RECORD = np.dtype([("pos", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rot", "u1", 4)])
assert RECORD.itemsize == 32


def _u8(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.clip(np.rint(x), 0, 255).astype(np.uint8)
    return out


def read(path: Path) -> Splat:
    size = path.stat().st_size
    if size % RECORD.itemsize:
        raise SplatFormatError(
            f"{path}: a .splat file is a whole number of 32-byte records, but it has {size} bytes "
            f"({size % 32} left over: truncated?)"
        )
    rec = np.fromfile(path, dtype=RECORD)
    rgba = rec["rgba"].astype(np.float32) / 255.0
    with np.errstate(divide="ignore"):
        scales = np.log(rec["scale"])
    return Splat(
        means=rec["pos"],
        scales=scales,
        quats=(rec["rot"].astype(np.float32) - 128.0) / 128.0,
        opacities=logit(rgba[:, 3]),
        sh0=rgb_to_sh0(rgba[:, :3]),
    )


def write(splat: Splat, path: Path, **_: Any) -> None:
    rec = np.empty(splat.count, dtype=RECORD)
    rec["pos"] = splat.means
    rec["scale"] = np.exp(splat.scales)
    rgba = np.empty((splat.count, 4), np.float32)
    rgba[:, :3] = sh0_to_rgb(splat.sh0)
    rgba[:, 3] = sigmoid(splat.opacities)
    rec["rgba"] = _u8(rgba * 255.0)
    rec["rot"] = _u8(normalize_quats(splat.quats) * 128.0 + 128.0)
    rec.tofile(path)


FORMAT = SplatFormat(
    name="splat",
    suffixes=(".splat",),
    up="-y",
    content_type="application/octet-stream",
    description="antimatter15 .splat (32 bytes per gaussian, no higher SH)",
    read=read,
    write=write,
)
