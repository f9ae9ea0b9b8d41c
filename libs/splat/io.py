"""Read and write any supported splat format; the format follows from the name (or ``fmt``).

=================  =====================================================================
``ply``            standard 3DGS PLY (float32, lossless)
``compressed-ply`` PlayCanvas compressed PLY (chunks of 256, quantised); ``*.compressed.ply``
``splat``          antimatter15 ``.splat`` (32 bytes per gaussian, no higher SH)
``spz``            Niantic ``.spz`` (gzip, fixed-point; versions 2 and 3 written, 2-4 read)
``sog``            PlayCanvas SOG (WebP textures in a zip), via ``@playcanvas/splat-transform``
=================  =====================================================================

A ``.ply`` is sniffed: a PlayCanvas compressed PLY is recognised from its header whatever its name.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from foto3d.libs.splat.errors import SplatFormatError
from foto3d.libs.splat.model import Splat
from foto3d.libs.splat.validate import validate

FORMATS = ("ply", "compressed-ply", "splat", "spz", "sog")


def format_from_name(path: str | Path) -> str | None:
    """The format a file name implies, or None if the extension is unknown."""
    name = str(path).lower()
    if name.endswith(".compressed.ply"):
        return "compressed-ply"
    for ext, fmt in ((".ply", "ply"), (".splat", "splat"), (".spz", "spz"), (".sog", "sog")):
        if name.endswith(ext):
            return fmt
    return None


def detect_format(path: Path) -> str:
    """The format of an existing file: its header where the name could mislead, else its name."""
    with open(path, "rb") as f:
        head = f.read(4)
    if head == b"ply\n":
        from foto3d.libs.splat.formats import compressed_ply
        from foto3d.libs.splat.formats.plyfile import read_header

        with open(path, "rb") as f:
            header = read_header(f, str(path))
        return "compressed-ply" if compressed_ply.looks_like(header) else "ply"
    if head[:2] == b"\x1f\x8b" or head == b"NGSP":  # gzip (spz v2/v3) or bare spz v4 header
        return "spz"
    if head == b"PK\x03\x04":
        return "sog"
    fmt = format_from_name(path)
    if fmt is None or fmt in ("ply", "compressed-ply", "spz", "sog"):
        raise SplatFormatError(
            f"{path}: unknown splat format (supported: .ply, .compressed.ply, .splat, .spz, .sog)"
        )
    return fmt


def _check_fmt(fmt: str) -> str:
    if fmt not in FORMATS:
        raise SplatFormatError(f"unknown splat format {fmt!r} (choose from {', '.join(FORMATS)})")
    return fmt


def read_unchecked(path: str | Path, *, fmt: str | None = None) -> tuple[Splat, str]:
    """Decode a splat file without the value checks; returns the splat and the format name.

    For tools that report on broken files (``info``); everything else should use :func:`read`.
    """
    p = Path(path)
    if not p.exists():
        raise SplatFormatError(f"{p}: no such file")
    if p.is_dir():
        raise SplatFormatError(f"{p}: is a folder, not a splat file")
    if p.stat().st_size == 0:
        raise SplatFormatError(f"{p}: file is empty")
    fmt = _check_fmt(fmt) if fmt else detect_format(p)
    try:
        splat: Splat = _module(fmt).read(p)
    except SplatFormatError:
        raise
    except (ValueError, EOFError, OSError) as exc:
        # Decoders validate what they can; anything that still slips through becomes a readable error.
        raise SplatFormatError(f"{p}: cannot read as {fmt}: {exc}") from exc
    return splat, fmt


def read(path: str | Path, *, fmt: str | None = None, repair: bool = False) -> Splat:
    """Decode a splat file; invalid values raise SplatFormatError unless ``repair`` fixes them."""
    splat, _ = read_unchecked(path, fmt=fmt)
    return validate(splat, str(path), repair_it=repair)


_EXT = {"ply": ".ply", "compressed-ply": ".compressed.ply", "splat": ".splat", "spz": ".spz", "sog": ".sog"}


def write(splat: Splat, path: str | Path, *, fmt: str | None = None, **opts: Any) -> None:
    """Encode ``splat`` to ``path``; ``opts`` are format options (see each module's ``write``).

    The file appears complete or not at all: it is written next to the target and renamed.
    """
    p = Path(path)
    fmt = _check_fmt(fmt) if fmt else format_from_name(p)
    if fmt is None:
        raise SplatFormatError(
            f"{p}: cannot tell the format from the name (use .ply, .compressed.ply, .splat, .spz or .sog)"
        )
    if splat.nonfinite_rows().any():
        raise SplatFormatError(f"{p}: refusing to write a splat with NaN/Inf values (repair it first)")
    if not p.parent.is_dir():
        raise SplatFormatError(f"{p}: folder {p.parent} does not exist")
    tmp = p.with_name(f".{p.name}.partial-{os.getpid()}{_EXT[fmt]}")
    try:
        _module(fmt).write(splat, tmp, **opts)
        os.replace(tmp, p)
    finally:
        tmp.unlink(missing_ok=True)


def _module(fmt: str) -> Any:
    from foto3d.libs.splat.formats import compressed_ply, ply, sog, splat, spz

    return {"ply": ply, "compressed-ply": compressed_ply, "splat": splat, "spz": spz, "sog": sog}[fmt]
