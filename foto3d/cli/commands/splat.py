"""`foto3d splat`: inspect and convert Gaussian splat files (reduce/compare live in splat_reduce)."""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from pathlib import Path

from foto3d.cli.common import fail
from foto3d.cli.splat_output import (
    FORMATS_HELP,
    SPZ_GZIP_LEVEL,
    add_spz_gzip_level,
    format_options,
    input_up,
    output_format,
    output_up,
)

ORDER = 40

_AXES = ["z", "y", "-y", "x", "-x", "-z"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "splat",
        help="inspect, convert, reduce and compare Gaussian splat files",
        description=f"Work with Gaussian splat files. Formats: {FORMATS_HELP}. See docs/splat.md.",
    )
    splat_sub = p.add_subparsers(dest="splat_command", metavar="SUBCOMMAND")

    def show_help(_args: argparse.Namespace) -> int:
        p.print_help()
        return 2

    p.set_defaults(func=show_help)

    info = splat_sub.add_parser(
        "info",
        help="show count, SH degree, bounds and statistics of a splat file",
        description="Print what a splat file holds: gaussian count, SH degree, bounds and robust "
        "bounds (1st-99th percentile), opacity and scale statistics, bytes per gaussian, format. "
        "Also lists problems (NaN/Inf values, zero quaternions, absurd scales) without failing.",
    )
    info.add_argument("file", type=Path, help="splat file to inspect")
    info.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    info.set_defaults(func=cmd_info)

    conv = splat_sub.add_parser(
        "convert",
        help="convert a splat file to another format (and orientation / SH degree)",
        description="Convert between splat formats; the output format follows from OUT's name "
        f"({FORMATS_HELP}). The scene is rotated from the input's up axis to the one the output "
        "format's viewers expect (.compressed.ply, .sog, .splat, .spz: -y, the 3DGS/PlayCanvas "
        "convention; .spz is stored as RUB). A .ply records its up axis (nerfstudio's "
        "'Vertical Axis' comment) and keeps the input's; one without the comment is taken as -y. "
        "Override with --up/--target-up.",
    )
    conv.add_argument("input", type=Path, help="splat file to read")
    conv.add_argument("-o", "--output", type=Path, required=True, help="file to write (format from its name)")
    conv.add_argument(
        "--up",
        choices=_AXES,
        help="the input's up axis (default: what the file records, else its format's: -y)",
    )
    conv.add_argument(
        "--target-up",
        choices=_AXES,
        help="the up axis to write (default: what the output format's viewers expect)",
    )
    conv.add_argument(
        "--sh-degree",
        type=int,
        choices=[0, 1, 2, 3],
        help="keep spherical harmonics up to this degree (default: the input's; .splat keeps 0)",
    )
    conv.add_argument(
        "--repair",
        action="store_true",
        help="drop NaN/Inf gaussians, fix zero quaternions and clamp absurd scales (with a warning) "
        "instead of refusing the file",
    )
    conv.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    conv.add_argument(
        "--spz-version",
        type=int,
        choices=[2, 3],
        default=3,
        help="spz version to write (default 3; 2 for older readers)",
    )
    add_spz_gzip_level(conv, SPZ_GZIP_LEVEL, "fast")
    conv.set_defaults(func=cmd_convert)
    # Let `--up -y` work as written: argparse would take "-y" for an unknown option. It treats
    # strings matching this pattern as values, as it does for negative numbers.
    conv._negative_number_matcher = re.compile(r"^-(?:[xyz]|\d+|\d*\.\d+)$")

    from foto3d.cli import splat_reduce

    splat_reduce.register(splat_sub)


def cmd_info(args: argparse.Namespace) -> int:
    from foto3d.libs.splat.info import describe, render_text
    from foto3d.libs.splat.io import read_unchecked
    from foto3d.libs.splat.validate import check

    try:
        splat, fmt = read_unchecked(args.file)
        clean = splat.subset(~splat.nonfinite_rows())
        info = describe(clean, args.file, fmt)
        info["count"] = splat.count
        info["problems"] = check(splat).problems()
        if splat.count:
            info["bytes_per_gaussian"] = info["file_bytes"] / splat.count
    except (ValueError, OSError) as exc:  # SplatFormatError is a ValueError
        return fail(str(exc))
    if args.json:
        json.dump(info, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(render_text(info))
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from foto3d.libs.splat import write
    from foto3d.libs.splat.coords import reorient
    from foto3d.libs.splat.io import read_unchecked
    from foto3d.libs.splat.validate import validate

    src: Path = args.input
    dst: Path = args.output
    try:
        out_fmt = output_format(src, dst, args.force)
        splat, in_fmt = read_unchecked(src)
        splat = validate(splat, str(src), repair_it=args.repair)
        up = input_up(src, in_fmt, args.up)
        target_up = output_up(out_fmt, up, args.target_up)
        if args.sh_degree is not None and args.sh_degree != splat.sh_degree:
            splat = splat.with_sh_degree(args.sh_degree)
        if up != target_up:
            splat = reorient(splat, up, target_up)
        write(splat, dst, up=target_up, **format_options(out_fmt, args))
    except (ValueError, OSError) as exc:  # SplatFormatError is a ValueError
        return fail(str(exc))
    in_size = src.stat().st_size
    out_size = dst.stat().st_size
    turned = f", rotated {up} up -> {target_up} up" if up != target_up else ""
    degree = 0 if out_fmt == "splat" else splat.sh_degree  # .splat stores no higher SH
    logging.getLogger("foto3d.splat").info("converted %s (%s) -> %s (%s)", src, in_fmt, dst, out_fmt)
    print(
        f"{src} ({in_fmt}, {in_size:,} bytes) -> {dst} ({out_fmt}, {out_size:,} bytes): "
        f"{splat.count:,} gaussians, SH degree {degree}{turned}"
    )
    return 0
