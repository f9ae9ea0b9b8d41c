"""PlayCanvas compressed PLY (``*.compressed.ply``): 16 bytes per gaussian plus SH as bytes.

A PLY with three elements:

- ``chunk`` (one per 256 gaussians, float32): ``min_x min_y min_z max_x max_y max_z
  min_scale_x .. max_scale_z min_r min_g min_b max_r max_g max_b`` (older files lack the colour
  bounds; colours are then plain 0..1);
- ``vertex`` (uint32 each): ``packed_position`` (11-10-11 bits, x y z within the chunk bounds),
  ``packed_rotation`` (2 bits: index of the largest of w x y z; then three 10-bit values of the
  others in [-1/√2, 1/√2]), ``packed_scale`` (11-10-11 of the log scales within the chunk bounds),
  ``packed_color`` (8-8-8-8: r g b within the chunk's colour bounds, where colour = 0.5 + SH_C0·f_dc,
  then sigmoid(opacity));
- ``sh`` (optional, uchar ``f_rest_0..``, same channel-major order as the .ply): (v/8 + 0.5)·256.

Gaussians are written in Morton (Z-curve) order so each chunk is spatially compact: that is what
makes the per-chunk bounds tight. Quantisation error: position ≤ chunk extent / 4094 (x, z) or
/ 2046 (y); log-scale likewise of the chunk's scale range; colour ≤ chunk colour range / 510;
alpha 1/510 (kept within 1/255..254/255); rotation ≈ 0.0007 per component; SH rest 1/64, clipped to [-4, 4].
Same frame as the standard .ply (no axis change).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from foto3d.libs.splat.errors import SplatFormatError
from foto3d.libs.splat.formats.base import SplatFormat
from foto3d.libs.splat.formats.plyfile import PlyHeader, read_elements, read_header, write_ply
from foto3d.libs.splat.model import SH_C0, Splat, logit, normalize_quats, sh_degree_for_rest, sigmoid

CHUNK = 256
CHUNK_PROPS = ["min_x", "min_y", "min_z", "max_x", "max_y", "max_z"]
CHUNK_PROPS += ["min_scale_x", "min_scale_y", "min_scale_z", "max_scale_x", "max_scale_y", "max_scale_z"]
COLOR_PROPS = ["min_r", "min_g", "min_b", "max_r", "max_g", "max_b"]
VERTEX_PROPS = ["packed_position", "packed_rotation", "packed_scale", "packed_color"]
_SQRT2 = float(np.sqrt(2.0))


def looks_like(header: PlyHeader) -> bool:
    v = header.element("vertex")
    return header.element("chunk") is not None and v is not None and "packed_position" in v.names()


def _unorm(v: np.ndarray, shift: int, bits: int) -> np.ndarray:
    mask = (1 << bits) - 1
    out: np.ndarray = ((v >> np.uint32(shift)) & np.uint32(mask)).astype(np.float32) / mask
    return out


def _lerp(lo: np.ndarray, hi: np.ndarray, t: np.ndarray) -> np.ndarray:
    out: np.ndarray = (lo * (1 - t) + hi * t).astype(np.float32)
    return out


# ---------------------------------------------------------------------------------------- read
def read(path: Path) -> Splat:
    header, el = read_elements(path)
    if not looks_like(header):
        raise SplatFormatError(f"{path}: not a PlayCanvas compressed PLY (no chunk/packed vertex)")
    chunk, vert = el["chunk"], el["vertex"]
    names = header.element("chunk").names()  # type: ignore[union-attr]
    missing = [p for p in CHUNK_PROPS if p not in names]
    missing += [p for p in VERTEX_PROPS if p not in vert.dtype.names]  # type: ignore[operator]
    if missing:
        raise SplatFormatError(f"{path}: compressed PLY lacks {', '.join(missing)}")
    n = len(vert)
    if len(chunk) * CHUNK < n:
        raise SplatFormatError(f"{path}: {len(chunk)} chunks cannot hold {n} gaussians (256 per chunk)")
    ci = np.arange(n) // CHUNK

    def c(name: str) -> np.ndarray:
        return np.asarray(chunk[name], np.float32)[ci]

    pp = vert["packed_position"].astype(np.uint32)
    means = np.stack(
        [
            _lerp(c("min_x"), c("max_x"), _unorm(pp, 21, 11)),
            _lerp(c("min_y"), c("max_y"), _unorm(pp, 11, 10)),
            _lerp(c("min_z"), c("max_z"), _unorm(pp, 0, 11)),
        ],
        axis=1,
    )
    ps = vert["packed_scale"].astype(np.uint32)
    scales = np.stack(
        [
            _lerp(c("min_scale_x"), c("max_scale_x"), _unorm(ps, 21, 11)),
            _lerp(c("min_scale_y"), c("max_scale_y"), _unorm(ps, 11, 10)),
            _lerp(c("min_scale_z"), c("max_scale_z"), _unorm(ps, 0, 11)),
        ],
        axis=1,
    )
    pr = vert["packed_rotation"].astype(np.uint32)
    three = np.stack([(_unorm(pr, s, 10) - 0.5) * _SQRT2 for s in (20, 10, 0)], axis=1)
    largest = (pr >> np.uint32(30)).astype(np.int64)
    big = np.sqrt(np.maximum(0.0, 1.0 - (three * three).sum(axis=1)))
    quats = np.empty((n, 4), np.float32)
    rows = np.arange(n)
    # Slot j of the three holds component j if j < largest, else component j + 1.
    for j in range(3):
        comp = np.where(j < largest, j, j + 1)
        quats[rows, comp] = three[:, j]
    quats[rows, largest] = big
    pc = vert["packed_color"].astype(np.uint32)
    rgb = np.stack([_unorm(pc, 24, 8), _unorm(pc, 16, 8), _unorm(pc, 8, 8)], axis=1)
    if all(p in names for p in COLOR_PROPS):
        lo = np.stack([c("min_r"), c("min_g"), c("min_b")], axis=1)
        hi = np.stack([c("max_r"), c("max_g"), c("max_b")], axis=1)
        rgb = _lerp(lo, hi, rgb)
    sh0 = (rgb - 0.5) / SH_C0
    opac = logit(_unorm(pc, 0, 8))
    sh_n = np.zeros((n, 0, 3), np.float32)
    if "sh" in el:
        sh = el["sh"]
        sh_names = list(sh.dtype.names or ())
        if len(sh) != n:
            raise SplatFormatError(f"{path}: sh element has {len(sh)} rows for {n} gaussians")
        try:
            sh_degree_for_rest(len(sh_names) // 3)
        except ValueError as exc:
            raise SplatFormatError(f"{path}: {exc}") from None
        b = np.stack([sh[f"f_rest_{i}"] for i in range(len(sh_names))], axis=1).astype(np.float32)
        nrm = np.where(b == 0, 0.0, np.where(b == 255, 1.0, (b + 0.5) / 256.0))
        sh_n = Splat.sh_rest_from_flat(((nrm - 0.5) * 8.0).astype(np.float32))
    return Splat(means, scales, quats, opac, sh0, sh_n)


# --------------------------------------------------------------------------------------- write
def _spread10(v: np.ndarray) -> np.ndarray:
    """Insert two zero bits between each of the low 10 bits (for 30-bit Morton codes)."""
    x = v.astype(np.uint32) & np.uint32(0x3FF)
    x = (x | (x << np.uint32(16))) & np.uint32(0x030000FF)
    x = (x | (x << np.uint32(8))) & np.uint32(0x0300F00F)
    x = (x | (x << np.uint32(4))) & np.uint32(0x030C30C3)
    x = (x | (x << np.uint32(2))) & np.uint32(0x09249249)
    return x


def morton_order(means: np.ndarray) -> np.ndarray:
    """Indices sorting points along a Z-order curve over their bounding box."""
    if len(means) == 0:
        return np.zeros(0, np.int64)
    lo, hi = means.min(axis=0), means.max(axis=0)
    q = ((means - lo) / np.maximum(hi - lo, 1e-12) * 1023.0).astype(np.uint32)
    code = (_spread10(q[:, 0]) << np.uint32(2)) | (_spread10(q[:, 1]) << np.uint32(1)) | _spread10(q[:, 2])
    return np.argsort(code, kind="stable")


def _pack_unorm(t: np.ndarray, bits: int) -> np.ndarray:
    m = (1 << bits) - 1
    out: np.ndarray = np.clip(np.floor(t * m + 0.5), 0, m).astype(np.uint32)
    return out


def _normalize(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    rng = hi - lo
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(rng < 1e-5, 0.0, (x - lo) / rng)
    return np.clip(t, 0.0, 1.0)


def write(splat: Splat, path: Path, *, sort: bool = True, **_: Any) -> None:
    """Write the compressed PLY; ``sort`` (default) reorders gaussians in Morton order."""
    s = splat.subset(morton_order(splat.means)) if sort else splat
    n = s.count
    if n == 0:
        raise SplatFormatError(f"{path}: cannot write an empty compressed PLY")
    n_chunks = -(-n // CHUNK)
    pad = n_chunks * CHUNK - n

    def padded(a: np.ndarray) -> np.ndarray:
        if pad:
            a = np.concatenate([a, np.repeat(a[-1:], pad, axis=0)])
        return a.reshape(n_chunks, CHUNK, *a.shape[1:])

    pos = padded(s.means.astype(np.float32))
    scl = padded(np.clip(s.scales, -20.0, 20.0).astype(np.float32))
    col = padded((0.5 + SH_C0 * s.sh0).astype(np.float32))
    bounds = np.empty((n_chunks, 18), np.float32)
    for arr, at in ((pos, 0), (scl, 6), (col, 12)):
        bounds[:, at : at + 3] = arr.min(axis=1)
        bounds[:, at + 3 : at + 6] = arr.max(axis=1)

    def pack111011(arr: np.ndarray, at: int) -> np.ndarray:
        t = _normalize(arr, bounds[:, None, at : at + 3], bounds[:, None, at + 3 : at + 6])
        t = t.reshape(-1, 3)[:n]
        out: np.ndarray = (
            (_pack_unorm(t[:, 0], 11) << 21) | (_pack_unorm(t[:, 1], 10) << 11) | _pack_unorm(t[:, 2], 11)
        )
        return out

    t_col = _normalize(col, bounds[:, None, 12:15], bounds[:, None, 15:18]).reshape(-1, 3)[:n]
    alpha = sigmoid(s.opacities)
    packed_color = (
        (_pack_unorm(t_col[:, 0], 8) << 24)
        | (_pack_unorm(t_col[:, 1], 8) << 16)
        | (_pack_unorm(t_col[:, 2], 8) << 8)
        # Alpha bytes 0 and 255 decode to ±inf logits in PlayCanvas' reader: keep to 1..254.
        | np.clip(_pack_unorm(alpha, 8), 1, 254)
    )
    q = normalize_quats(s.quats).astype(np.float64)
    largest = np.argmax(np.abs(q), axis=1)
    rows = np.arange(n)
    q *= np.where(q[rows, largest] < 0, -1.0, 1.0)[:, None]
    rot = largest.astype(np.uint32)
    for i in range(4):
        take = largest != i
        rot = np.where(take, (rot << np.uint32(10)) | _pack_unorm(q[:, i] / _SQRT2 + 0.5, 10), rot)

    vertex = np.empty(n, dtype=[(p, "<u4") for p in VERTEX_PROPS])
    vertex["packed_position"] = pack111011(pos, 0)
    vertex["packed_rotation"] = rot
    vertex["packed_scale"] = pack111011(scl, 6)
    vertex["packed_color"] = packed_color
    chunk = bounds.view(np.dtype([(p, "<f4") for p in CHUNK_PROPS + COLOR_PROPS])).reshape(n_chunks)
    elements: list[tuple[str, np.ndarray]] = [("chunk", chunk), ("vertex", vertex)]
    k3 = s.shN.shape[1] * 3
    if k3:
        flat = s.sh_rest_flat()
        b = np.clip(np.trunc((flat / 8.0 + 0.5) * 256.0), 0, 255).astype(np.uint8)
        elements.append(("sh", b.view(np.dtype([(f"f_rest_{i}", "u1") for i in range(k3)])).reshape(n)))
    write_ply(path, elements, comments=["Generated by foto3d"])


def _sniff(head: bytes, path: Path) -> bool:
    if head[:4] != b"ply\n":
        return False
    with open(path, "rb") as f:
        return looks_like(read_header(f, str(path)))


FORMAT = SplatFormat(
    name="compressed-ply",
    suffixes=(".compressed.ply",),
    up="-y",
    content_type="application/octet-stream",
    description="PlayCanvas compressed PLY (chunks of 256, quantised)",
    read=read,
    write=write,
    sniff=_sniff,
)
