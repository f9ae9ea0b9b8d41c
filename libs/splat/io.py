"""Read and write any supported splat format; the format follows from the name (or ``fmt``).

The formats and everything known about them are declared in :mod:`.formats` (one module each,
collected by :mod:`.formats.registry`): ``ply``, ``compressed-ply``, ``splat``, ``spz``, ``sog``.
A file is sniffed by its magic where it has one, so a PlayCanvas compressed PLY is recognised
from its header whatever its name.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from foto3d.libs.splat.errors import SplatFormatError
from foto3d.libs.splat.formats import registry
from foto3d.libs.splat.model import Splat
from foto3d.libs.splat.validate import validate

FORMATS = registry.NAMES

#: The up axis assumed for a file that does not record one (a .ply without nerfstudio's
#: ``Vertical Axis`` comment): the 3DGS/INRIA and PlayCanvas convention, the common case.
DEFAULT_UP = "-y"


def format_from_name(path: str | Path) -> str | None:
    """The format a file name implies, or None if the extension is unknown."""
    fmt = registry.from_name(path)
    return fmt.name if fmt else None


def detect_format(path: Path) -> str:
    """The format of an existing file: its header where the name could mislead, else its name."""
    return registry.sniff(path).name


def up_axis(path: Path, fmt: str | None = None) -> tuple[str, bool]:
    """(the up axis of ``path``'s data as read, whether the file or its format says so).

    When neither does (a .ply without a ``Vertical Axis`` comment) the answer is
    :data:`DEFAULT_UP` and False, so callers can say they assumed it."""
    spec = registry.get(fmt) if fmt else registry.sniff(path)
    if spec.up is not None:
        return spec.up, True
    recorded = spec.recorded_up(path) if spec.recorded_up else None
    return (recorded, True) if recorded else (DEFAULT_UP, False)


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
    spec = registry.get(fmt) if fmt else registry.sniff(p)
    try:
        splat = spec.read(p)
    except SplatFormatError:
        raise
    except (ValueError, EOFError, OSError) as exc:
        # Decoders validate what they can; anything that still slips through becomes a readable error.
        raise SplatFormatError(f"{p}: cannot read as {spec.name}: {exc}") from exc
    return splat, spec.name


def read(path: str | Path, *, fmt: str | None = None, repair: bool = False) -> Splat:
    """Decode a splat file; invalid values raise SplatFormatError unless ``repair`` fixes them."""
    splat, _ = read_unchecked(path, fmt=fmt)
    return validate(splat, str(path), repair_it=repair)


def write(splat: Splat, path: str | Path, *, fmt: str | None = None, **opts: Any) -> None:
    """Encode ``splat`` to ``path``; ``opts`` are format options (see each module's ``write``;
    ``up=AXIS`` is recorded by formats that can record it and ignored by the others).

    The file appears complete or not at all: it is written next to the target and renamed.
    """
    p = Path(path)
    spec = registry.get(fmt) if fmt else registry.from_name(p)
    if spec is None:
        raise SplatFormatError(f"{p}: cannot tell the format from the name (use {registry.SUFFIXES_TEXT})")
    if splat.nonfinite_rows().any():
        raise SplatFormatError(f"{p}: refusing to write a splat with NaN/Inf values (repair it first)")
    if not p.parent.is_dir():
        raise SplatFormatError(f"{p}: folder {p.parent} does not exist")
    tmp = p.with_name(f".{p.name}.partial-{os.getpid()}{spec.suffixes[0]}")
    try:
        spec.write(splat, tmp, **opts)
        os.replace(tmp, p)
    finally:
        tmp.unlink(missing_ok=True)
