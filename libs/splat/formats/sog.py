"""PlayCanvas SOG (``.sog``: a zip of WebP textures + ``meta.json``), through ``splat-transform``.

SOG quantises positions (16-bit, log-transformed), rotations, scales and colours into lossless
WebP images and compresses SH with k-means palettes; writing it well needs that clustering, which
``@playcanvas/splat-transform`` does (on the CPU with ``-g cpu``). We hand it a lossless .ply and
read its output back through a .ply the same way. Same frame as the standard .ply.
Typical error: positions ≈ 1e-4 of the scene extent, f_dc ≈ 0.01-0.05, SH rest from the palette.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from foto3d.libs.splat import splat_transform
from foto3d.libs.splat.formats import ply
from foto3d.libs.splat.formats.base import SplatFormat
from foto3d.libs.splat.formats.plyfile import PlyHeader
from foto3d.libs.splat.model import Splat


def looks_like(header: PlyHeader) -> bool:
    return False


def read(path: Path) -> Splat:
    with tempfile.TemporaryDirectory(prefix="foto3d-sog-") as tmp:
        out = Path(tmp) / "decoded.ply"
        splat_transform.run([str(path), str(out)])
        return ply.read(out)


def write(splat: Splat, path: Path, *, sh_iterations: int = 10, **_: Any) -> None:
    with tempfile.TemporaryDirectory(prefix="foto3d-sog-") as tmp:
        src = Path(tmp) / "source.ply"
        ply.write(splat, src, normals=False)
        splat_transform.run(["-g", "cpu", "-i", str(sh_iterations), str(src), str(path)])


def _sniff(head: bytes, path: Path) -> bool:
    return head[:4] == b"PK\x03\x04"


FORMAT = SplatFormat(
    name="sog",
    suffixes=(".sog",),
    up="-y",
    content_type="application/zip",
    description="PlayCanvas SOG (WebP textures in a zip), via @playcanvas/splat-transform",
    read=read,
    write=write,
    sniff=_sniff,
)
