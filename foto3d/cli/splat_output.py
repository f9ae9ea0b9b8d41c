"""What every `foto3d splat` command that writes a file checks, and the up axes it works in."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

# Mirror foto3d.libs.splat.formats.spz's GZIP_LEVEL and SMALLEST_GZIP_LEVEL (importing it would
# load numpy for `--help`); tests/splat/test_pgzip.py keeps them equal.
SPZ_GZIP_LEVEL = 6
SPZ_SMALLEST_GZIP_LEVEL = 12

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


def add_spz_gzip_level(parser: argparse.ArgumentParser, default: int, why: str) -> None:
    parser.add_argument(
        "--spz-gzip-level",
        type=int,
        choices=range(13),
        metavar="0-12",
        default=default,
        help=f"gzip level for .spz output (default {default}: {why}). 1-9 run on every core; "
        "10-12 (libdeflate) write 2-5 %% smaller files on one core, seconds more on 500k gaussians",
    )


def format_options(fmt: str, args: argparse.Namespace) -> dict[str, Any]:
    """The writer options the command's arguments ask for, for output format ``fmt``."""
    opts: dict[str, Any] = {}
    if fmt == "spz":
        opts["compresslevel"] = args.spz_gzip_level
        if getattr(args, "spz_version", None) is not None:
            opts["version"] = args.spz_version
    return opts
