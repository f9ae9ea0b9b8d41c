"""What every `foto3d splat` command that writes a file checks before reading anything."""

from __future__ import annotations

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
