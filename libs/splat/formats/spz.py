"""Niantic ``.spz``: gzip (v2, v3) or per-stream zstd (v4) around fixed-point attribute blocks.

Layout (v2/v3, after gunzip): a 16-byte header — magic ``NGSP`` (0x5053474e), version, count
(u32 each), SH degree, fractional bits, flags, reserved (u8 each) — then the attributes, each a
block for all gaussians: positions (3 × signed 24-bit fixed point), alphas (u8, sigmoid),
colours (3 × u8: f_dc · 0.15 + 0.5), scales (3 × u8: (log + 10) · 16), rotations (v2: x, y, z
as u8 with w ≥ 0 derived; v3+: "smallest three" in 32 bits: 2-bit index of the largest
component, three 10-bit sign+magnitude values), then SH rest (u8, coefficient-major with the three
colour channels inner, (v - 128)/128; written in buckets of 8 for degree 1 and 16 above, as
Niantic's encoder does). v4 has a 32-byte header whose bytes 15-19 give the stream count and the
offset of a table of (compressed, raw) u64 sizes, one zstd stream per block.

Coordinates: spz stores RUB (x right, y up, z back); 3DGS .ply data is RDF. Like Niantic's
library with ``from/to = RDF``, this codec flips y and z (a half turn about x, applied to the
centres, rotations and SH) on write and read, so in memory a decoded .spz is in the PLY frame.

Quantisation error (max): position 2^-(fb+1) (fb = 12 unless the scene needs more range:
≈ 0.12 mm per metre unit), log-scale 1/32, alpha 1/510, f_dc 0.0131, rotation v3 ≈ 0.0007 /
v2 ≈ 0.004 per stored component (w is derived, so up to ≈ 0.1 when w ≈ 0), SH rest 4.5/128
(degree 1) and 8.5/128 (degrees 2-3), clipped to [-1, 127/128]. Log-scales are clipped to
[-10, 5.94].
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from foto3d.libs.splat.coords import rotate
from foto3d.libs.splat.errors import SplatFormatError
from foto3d.libs.splat.formats.base import SplatFormat
from foto3d.libs.splat.formats.pgzip import MAX_LEVEL as MAX_GZIP_LEVEL
from foto3d.libs.splat.formats.pgzip import write_gzip
from foto3d.libs.splat.model import SH_REST_COUNT, Splat, logit, normalize_quats, sigmoid
from foto3d.libs.splat.progress import Progress

MAGIC = 0x5053474E
COLOR_SCALE = 0.15
FLAG_ANTIALIASED = 0x1
FLAG_EXTENSIONS = 0x2
_SQRT1_2 = float(np.sqrt(0.5))
#: RUB <-> RDF: a half turn about x (its own inverse).
_FLIP_YZ = np.diag([1.0, -1.0, -1.0])


def _u8(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.clip(np.rint(x), 0, 255).astype(np.uint8)
    return out


# ---------------------------------------------------------------------------------------- read
def read(path: Path) -> Splat:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise SplatFormatError(f"{path}: .spz gzip stream is damaged or truncated ({exc})") from None
    else:
        data = raw
    if len(data) < 16:
        raise SplatFormatError(f"{path}: too short for a .spz header")
    magic, version, count, degree, frac_bits, flags, _ = struct.unpack_from("<IIIBBBB", data)
    if magic != MAGIC:
        raise SplatFormatError(f"{path}: not a .spz file (bad magic {magic:#010x})")
    if version not in (2, 3, 4):
        raise SplatFormatError(f"{path}: .spz version {version} is not supported (2, 3 and 4 are)")
    if degree not in SH_REST_COUNT:
        raise SplatFormatError(f"{path}: .spz SH degree {degree} is not supported (0-3 are)")
    if flags & FLAG_EXTENSIONS:
        raise SplatFormatError(f"{path}: .spz extensions (flag 0x2) are not supported")
    k = SH_REST_COUNT[degree]
    rot_bytes = 3 if version == 2 else 4
    sizes = [count * 9, count, count * 3, count * 3, count * rot_bytes, count * k * 3]
    if version == 4:
        blocks = _v4_blocks(path, data, sizes if k else sizes[:5])
        if not k:
            blocks.append(b"")
    else:
        need = 16 + sum(sizes)
        if len(data) < need:
            raise SplatFormatError(
                f"{path}: .spz is truncated: header announces {count} gaussians ({need} bytes "
                f"unpacked) but only {len(data)} bytes are there"
            )
        blocks, off = [], 16
        for s in sizes:
            blocks.append(data[off : off + s])
            off += s
    splat = _decode(blocks, count, version, k, frac_bits)
    return rotate(splat, _FLIP_YZ)


def _v4_blocks(path: Path, data: bytes, sizes: list[int]) -> list[bytes]:
    try:
        import zstandard
    except ImportError:  # pragma: no cover - zstandard is a dependency
        raise SplatFormatError(f"{path}: reading .spz v4 needs the 'zstandard' package") from None
    if len(data) < 32:
        raise SplatFormatError(f"{path}: too short for a .spz v4 header")
    n_streams = data[15]
    (toc,) = struct.unpack_from("<I", data, 16)
    if n_streams != len(sizes) or toc < 32 or toc + 16 * n_streams > len(data):
        raise SplatFormatError(f"{path}: .spz v4 stream table is inconsistent with its header")
    off = toc + 16 * n_streams
    dctx = zstandard.ZstdDecompressor()
    out = []
    for i, want in enumerate(sizes):
        csize, usize = struct.unpack_from("<QQ", data, toc + 16 * i)
        if usize != want or off + csize > len(data):
            raise SplatFormatError(f"{path}: .spz v4 stream {i} is truncated or has the wrong size")
        try:
            block = dctx.decompress(data[off : off + csize], max_output_size=usize)
        except zstandard.ZstdError as exc:
            raise SplatFormatError(f"{path}: .spz v4 stream {i} is damaged ({exc})") from None
        if len(block) != usize:
            raise SplatFormatError(f"{path}: .spz v4 stream {i} decompressed to the wrong size")
        out.append(block)
        off += csize
    return out


def _decode(blocks: list[bytes], n: int, version: int, k: int, frac_bits: int) -> Splat:
    pos_b = np.frombuffer(blocks[0], np.uint8).reshape(n * 3, 3).astype(np.int32)
    fixed = pos_b[:, 0] | (pos_b[:, 1] << 8) | (pos_b[:, 2] << 16)
    fixed = np.where(fixed & 0x800000, fixed - (1 << 24), fixed)
    means = (fixed.astype(np.float64) / (1 << frac_bits)).reshape(n, 3)
    alpha = np.frombuffer(blocks[1], np.uint8).astype(np.float32) / 255.0
    colors = np.frombuffer(blocks[2], np.uint8).reshape(n, 3).astype(np.float32)
    sh0 = (colors / 255.0 - 0.5) / COLOR_SCALE
    scales = np.frombuffer(blocks[3], np.uint8).reshape(n, 3).astype(np.float32) / 16.0 - 10.0
    if version == 2:
        xyz = np.frombuffer(blocks[4], np.uint8).reshape(n, 3).astype(np.float32) / 127.5 - 1.0
        w = np.sqrt(np.maximum(0.0, 1.0 - (xyz * xyz).sum(axis=1)))
        quats = np.concatenate([w[:, None], xyz], axis=1)
    else:
        quats = _unpack_smallest_three(np.frombuffer(blocks[4], "<u4"))
    sh_n = (np.frombuffer(blocks[5], np.uint8).reshape(n, k, 3).astype(np.float32) - 128.0) / 128.0
    return Splat(means, scales, quats, logit(alpha), sh0, sh_n)


def _unpack_smallest_three(packed: np.ndarray) -> np.ndarray:
    """u32 codes to (w, x, y, z); spz orders components (x, y, z, w) and fills from the high bits."""
    p = packed.astype(np.uint32)
    largest = (p >> 30).astype(np.int64)
    n = len(p)
    xyzw = np.zeros((n, 4), np.float32)
    rest = p.copy()
    # Components other than the largest, from index 3 down to 0, each 10 bits from the low end.
    for i in (3, 2, 1, 0):
        take = largest != i
        mag = (rest & 0x1FF).astype(np.float32)
        neg = ((rest >> 9) & 1).astype(bool)
        val = _SQRT1_2 * mag / 511.0
        val = np.where(neg, -val, val)
        xyzw[take, i] = val[take]
        rest = np.where(take, rest >> 10, rest)
    big = np.sqrt(np.maximum(0.0, 1.0 - (xyzw * xyzw).sum(axis=1)))
    xyzw[np.arange(n), largest] = big
    return xyzw[:, [3, 0, 1, 2]]


# --------------------------------------------------------------------------------------- write
def _pack_smallest_three(quats: np.ndarray) -> np.ndarray:
    q = normalize_quats(quats)[:, [1, 2, 3, 0]].astype(np.float64)  # to (x, y, z, w)
    n = len(q)
    largest = np.argmax(np.abs(q), axis=1)
    sign = np.where(q[np.arange(n), largest] < 0, -1.0, 1.0)
    q *= sign[:, None]
    code = largest.astype(np.uint32)
    for i in range(4):
        take = largest != i
        mag = np.minimum(np.floor(511.0 * np.abs(q[:, i]) / _SQRT1_2 + 0.5), 511).astype(np.uint32)
        neg = (q[:, i] < 0).astype(np.uint32)
        code = np.where(take, (code << 10) | (neg << 9) | mag, code)
    out: np.ndarray = code.astype("<u4")
    return out


def _quantize_sh(sh_n: np.ndarray) -> np.ndarray:
    """round(v·128) + 128, snapped to buckets of 8 (degree 1: 5 bits) or 16 (above: 4 bits)."""
    q = np.clip(np.rint(sh_n * np.float32(128.0)), -1024, 1024).astype(np.int16)
    q += 128
    q[:, :3] += 4
    q[:, :3] >>= 3
    q[:, :3] <<= 3
    q[:, 3:] += 8
    q[:, 3:] >>= 4
    q[:, 3:] <<= 4
    np.clip(q, 0, 255, out=q)
    return q.astype(np.uint8)


def choose_fractional_bits(means: np.ndarray, preferred: int = 12) -> int:
    """Most fractional bits (≤ ``preferred``) that still fit every coordinate in 24 bits."""
    extent = float(np.abs(means).max()) if means.size else 0.0
    bits = preferred
    while bits > 0 and extent * (1 << bits) >= (1 << 23) - 1:
        bits -= 1
    if extent * (1 << bits) >= (1 << 23) - 1:
        raise SplatFormatError(f"scene extends to {extent:g} units: too large for .spz positions")
    return bits


# 6 as Niantic's encoder: fast, on every thread. 12, libdeflate's smallest, is 2-5 % smaller on
# real scenes and takes seconds more on one thread: for files written once and fetched often.
GZIP_LEVEL = 6
SMALLEST_GZIP_LEVEL = MAX_GZIP_LEVEL


def write(splat: Splat, path: Path, *, version: int = 3, compresslevel: int = GZIP_LEVEL, **_: Any) -> None:
    """Write spz ``version`` 2 or 3 (gzip at ``compresslevel``, 0 to 12; see ``GZIP_LEVEL``).

    Data is converted from the PLY frame to RUB.
    """
    if version not in (2, 3):
        raise SplatFormatError(f"{path}: can write .spz versions 2 and 3, not {version}")
    s = rotate(splat, _FLIP_YZ)
    n, k = s.count, s.shN.shape[1]
    fb = choose_fractional_bits(s.means)
    fixed = np.rint(s.means.astype(np.float64) * (1 << fb)).astype("<i4").reshape(-1)
    pos = fixed.view(np.uint8).reshape(-1, 4)[:, :3]
    alpha = _u8(sigmoid(s.opacities) * 255.0)
    colors = _u8(s.sh0 * (COLOR_SCALE * 255.0) + 127.5)
    scales = _u8((s.scales + 10.0) * 16.0)
    if version == 2:
        q = normalize_quats(s.quats)  # w >= 0 already
        rot = _u8(q[:, 1:] * 127.5 + 127.5)
    else:
        rot = _pack_smallest_three(s.quats)
    header = struct.pack("<IIIBBBB", MAGIC, version, n, s.sh_degree, fb, 0, 0)
    blocks = [np.ascontiguousarray(b) for b in (pos, alpha, colors, scales, rot)]
    if k:
        blocks.append(_quantize_sh(s.shN))
    total = len(header) + sum(b.nbytes for b in blocks)
    parts: list[bytes | memoryview] = [header, *(b.reshape(-1).view(np.uint8).data for b in blocks)]
    with path.open("wb") as f, Progress(total, "writing") as bar:
        write_gzip(f, parts, level=compresslevel, progress=bar.update)


def _sniff(head: bytes, path: Path) -> bool:
    # gzip (v2/v3) or a bare v4 header. Any gzip file passes; the reader checks the magic inside.
    return head[:2] == b"\x1f\x8b" or head[:4] == b"NGSP"


FORMAT = SplatFormat(
    name="spz",
    suffixes=(".spz",),
    up="-y",  # stored RUB (+Y up); the codec turns it into the PLY frame (RDF), as Niantic's library does
    content_type="application/octet-stream",
    description="Niantic .spz (gzip, fixed-point; version 3 written, 2-4 read)",
    read=read,
    write=write,
    sniff=_sniff,
    storage_turn=tuple(tuple(float(v) for v in row) for row in _FLIP_YZ),
)
