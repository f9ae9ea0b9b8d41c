"""What every `foto3d splat` command that writes a file checks, and the up axes it works in."""

from __future__ import annotations

import sys
from pathlib import Path

FORMATS_HELP = ".ply (3DGS), .compressed.ply (PlayCanvas), .splat, .spz (Niantic), .sog (PlayCanvas)"


def output_format(src: Path, dst: Path, force: bool) -> str:
    """The format ``dst``'s name asks for; ValueError with a readable reason when ``dst`` can't be written."""
    from foto3d.libs.splat import format_from_name

    fmt = format_from_name(dst)
    if fmt is None:
        raise ValueError(f"{dst}: cannot tell the output format from the name (use {FORMATS_HELP})")
    if dst.exists() and not force:
        raise ValueError(f"{dst} exists; use --force to overwrite it")
    if src.exists() and dst.exists() and src.resolve() == dst.resolve():
        raise ValueError("input and output are the same file")
    return fmt


def input_up(path: Path, fmt: str, given: str | None) -> str:
    """The input's up axis: ``given`` (--up), else what the file or its format says; when
    neither says (a .ply without a ``Vertical Axis`` comment) the 3DGS convention, with a note."""
    from foto3d.libs.splat import up_axis

    if given:
        return given
    up, known = up_axis(path, fmt)
    if not known:
        print(
            f"note: {path} does not record its up axis; assuming {up} (the 3DGS/PlayCanvas "
            "convention); pass --up to say otherwise",
            file=sys.stderr,
        )
    return up


def output_up(fmt: str, source_up: str, given: str | None) -> str:
    """The up axis to write: ``given`` (--target-up), else what ``fmt``'s viewers expect; a
    format that records its axis (.ply) keeps the source's, so nothing is turned needlessly."""
    from foto3d.libs.splat.formats.registry import get

    return given or get(fmt).up or source_up
