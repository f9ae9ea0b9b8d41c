"""Standard 3DGS .ply (as written by the reference trainer and nerfstudio's ``ns-export gaussian-splat``).

One ``vertex`` element of float32 properties: ``x y z [nx ny nz] f_dc_0..2 [f_rest_0..3K-1]
opacity scale_0..2 rot_0..3``. Properties may come in any order and in any numeric type;
``f_rest_*`` are channel-major (all R coefficients, then G, then B). Lossless for our model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from foto3d.libs.splat.errors import SplatFormatError
from foto3d.libs.splat.formats.base import SplatFormat
from foto3d.libs.splat.formats.plyfile import PlyHeader, read_elements, read_header, write_ply
from foto3d.libs.splat.model import Splat, sh_degree_for_rest

#: How nerfstudio's exporter (and ours) records the up axis in the header.
UP_COMMENT = "Vertical Axis:"
_AXIS_NAMES = ("x", "-x", "y", "-y", "z", "-z")

REQUIRED = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity"]
REQUIRED += [f"scale_{i}" for i in range(3)] + [f"rot_{i}" for i in range(4)]


def looks_like(header: PlyHeader) -> bool:
    el = header.element("vertex")
    return el is not None and all(n in el.names() for n in REQUIRED)


def recorded_up(path: Path) -> str | None:
    """The up axis a ``comment Vertical Axis: AXIS`` header line records (AXIS one of x, -x, y,
    -y, z, -z, or a unit vector such as ``0 -1 0``), else None."""
    with open(path, "rb") as f:
        header = read_header(f, str(path))
    for comment in header.comments:
        if not comment.lower().startswith(UP_COMMENT.lower()):
            continue
        value = comment[len(UP_COMMENT) :].strip().lower()
        if value in _AXIS_NAMES:
            return value
        parts = value.split()
        if len(parts) == 3:
            try:
                vec = [round(float(p)) for p in parts]
            except ValueError:
                return None
            if sorted(abs(v) for v in vec) == [0, 0, 1]:
                i = next(k for k, v in enumerate(vec) if v)
                return ("-" if vec[i] < 0 else "") + "xyz"[i]
    return None


def read(path: Path) -> Splat:
    header, elements = read_elements(path)
    el = header.element("vertex")
    if el is None:
        raise SplatFormatError(f"{path}: PLY has no 'vertex' element, so it holds no gaussians")
    missing = [n for n in REQUIRED if n not in el.names()]
    if missing:
        raise SplatFormatError(
            f"{path}: PLY vertex element lacks {', '.join(missing)}: not a 3D Gaussian splat "
            "(a point cloud or mesh?)"
        )
    v = elements["vertex"]
    rest_names = sorted((n for n in el.names() if n.startswith("f_rest_")), key=lambda s: int(s[7:]))
    if rest_names != [f"f_rest_{i}" for i in range(len(rest_names))]:
        raise SplatFormatError(f"{path}: f_rest_* properties are not numbered 0..{len(rest_names) - 1}")
    if len(rest_names) % 3:
        raise SplatFormatError(f"{path}: {len(rest_names)} f_rest_* properties is not a multiple of 3")
    try:
        sh_degree_for_rest(len(rest_names) // 3)
    except ValueError as exc:
        raise SplatFormatError(f"{path}: {exc}") from None

    prop_names = el.names()
    # The common case (every property float32): view the records as one float32 matrix and
    # gather columns with a single fancy index per attribute.
    matrix = v.view(np.float32).reshape(len(v), -1) if all(k == "f4" for _, k in el.properties) else None

    def cols(names: list[str]) -> np.ndarray:
        if matrix is not None:
            return matrix[:, [prop_names.index(n) for n in names]]
        out = np.empty((len(v), len(names)), np.float32)
        for i, n in enumerate(names):
            out[:, i] = v[n]
        return out

    k = len(rest_names) // 3
    if matrix is not None:
        # (K, 3) table of column numbers: f_rest_{c*K + k} is coefficient k of channel c.
        table = np.array([[prop_names.index(f"f_rest_{c * k + j}") for c in range(3)] for j in range(k)])
        sh_n = matrix[:, table] if k else np.zeros((len(v), 0, 3), np.float32)
    else:
        rest = cols(rest_names) if rest_names else np.zeros((len(v), 0), np.float32)
        sh_n = Splat.sh_rest_from_flat(rest)
    return Splat(
        means=cols(["x", "y", "z"]),
        scales=cols(["scale_0", "scale_1", "scale_2"]),
        quats=cols(["rot_0", "rot_1", "rot_2", "rot_3"]),
        opacities=cols(["opacity"])[:, 0],
        sh0=cols(["f_dc_0", "f_dc_1", "f_dc_2"]),
        shN=sh_n,
    )


def write(splat: Splat, path: Path, *, normals: bool = False, up: str | None = None, **_: Any) -> None:
    """Write float32 binary little-endian. No normals by default: 3DGS readers do not need the
    zero ``nx ny nz`` (21 % of an SH-0 file); ``normals=True`` adds them for tools that insist.
    ``up`` is recorded as nerfstudio records it (``comment Vertical Axis: z``)."""
    n = splat.count
    names = ["x", "y", "z"]
    if normals:
        names += ["nx", "ny", "nz"]
    names += ["f_dc_0", "f_dc_1", "f_dc_2"]
    k3 = splat.shN.shape[1] * 3
    names += [f"f_rest_{i}" for i in range(k3)]
    names += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    # Fill one float32 matrix column-block-wise, then view it as the structured record array:
    # that is a single memory pass per attribute and no per-row work.
    m = np.zeros((n, len(names)), np.float32)
    c = 0
    m[:, c : c + 3] = splat.means
    c += 6 if normals else 3
    m[:, c : c + 3] = splat.sh0
    c += 3
    m[:, c : c + k3] = splat.sh_rest_flat()
    c += k3
    m[:, c] = splat.opacities
    m[:, c + 1 : c + 4] = splat.scales
    m[:, c + 4 : c + 8] = splat.quats
    rec = m.view(np.dtype([(nm, "<f4") for nm in names])).reshape(n)
    comments = [f"{UP_COMMENT} {up}"] if up else []
    write_ply(path, [("vertex", rec)], comments=comments)


def _sniff(head: bytes, path: Path) -> bool:
    return head[:4] == b"ply\n"


FORMAT = SplatFormat(
    name="ply",
    suffixes=(".ply",),
    up=None,
    content_type="application/octet-stream",
    description="standard 3DGS PLY (float32, lossless)",
    read=read,
    write=write,
    sniff=_sniff,
    recorded_up=recorded_up,
)
