"""`foto3d splat reduce` and `foto3d splat compare` (registered by the `splat` command group)."""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from foto3d.cli.common import fail
from foto3d.cli.splat_output import (
    FORMATS_HELP,
    SPZ_SMALLEST_GZIP_LEVEL,
    add_spz_gzip_level,
    format_options,
    input_up,
    output_format,
    output_up,
)
from foto3d.proto.jobs import DEFAULT_KEEP

# Mirrors foto3d.libs.splat.reduce's RECOMMENDED_REFIT_*: importing it here would load numpy and
# scipy for `--help`; tests/splat/test_refit_fallback.py keeps the two equal.
RECOMMENDED_REFIT_STEPS = 1000
RECOMMENDED_REFIT_SECONDS = 120.0
REFIT_BUDGET_GAUSSIANS = 62_500
RECOMMENDED_REFIT_MAX_SECONDS = 600.0

if TYPE_CHECKING:
    from foto3d.libs.splat.model import Splat
    from foto3d.libs.splat.quality import QualityReport

_AXES = ["z", "y", "-y", "x", "-x", "-z"]
_NEG_VALUE = re.compile(r"^-(?:[xyz]|\d+|\d*\.\d+)$")


def _fraction(text: str) -> float:
    try:
        v = float(text.rstrip("%")) / (100.0 if text.endswith("%") else 1.0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 < v <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a fraction in (0, 1] or a percentage, got {text!r}")
    return v


def _count(text: str) -> int:
    try:
        v = int(text.replace(",", "").replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {v}")
    return v


def _opacity(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= v < 1.0:
        raise argparse.ArgumentTypeError(f"must be an opacity in [0, 1), got {v}")
    return v


def _seconds(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not v > 0 or math.isinf(v):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return v


def _positive(text: str) -> int:
    v = _count(text)
    if v < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return v


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `reduce` and `compare` to the `foto3d splat` sub-command group."""
    red = sub.add_parser(
        "reduce",
        help="make a splat smaller: prune by importance, drop floaters, lower the SH degree",
        description="Reduce a splat without retraining and write it in any format (from OUT's name: "
        f"{FORMATS_HELP}). Steps, in order: drop invalid rows; drop gaussians below --min-opacity; "
        "drop floaters (--remove-floaters); reach --keep fraction / --count by merging neighbours "
        "(default) or pruning the least important (--strategy prune, see --importance); lower the "
        "SH degree; re-fit the survivors to the input's renders (--refit-steps, on by default). Prints sizes "
        "before/after and what was removed. See docs/splat.md.",
    )
    red.add_argument("input", type=Path, help="splat file to reduce")
    red.add_argument("-o", "--output", type=Path, required=True, help="file to write (format from its name)")
    size = red.add_mutually_exclusive_group()
    size.add_argument(
        "--keep",
        type=_fraction,
        default=None,
        help=f"fraction of the gaussians to keep, e.g. 0.5 or 50%% (default {DEFAULT_KEEP:g} unless --count)",
    )
    size.add_argument("--count", type=_count, help="number of gaussians to keep")
    red.add_argument(
        "--sh-degree", type=int, choices=[0, 1, 2, 3], help="lower spherical harmonics to this degree"
    )
    red.add_argument(
        "--min-opacity", type=_opacity, metavar="A", help="drop gaussians with opacity (0..1) below A"
    )
    red.add_argument(
        "--remove-floaters",
        action="store_true",
        help="drop floaters: far outside the robust bounds, isolated, or large and faint",
    )
    red.add_argument(
        "--cameras",
        type=Path,
        metavar="TRANSFORMS",
        help="nerfstudio transforms.json (or its folder) of the training views: prune by "
        "LightGaussian's global significance over them (dataparser_transforms.json beside it is used)",
    )
    red.add_argument(
        "--importance",
        choices=["auto", "views", "area", "volume", "opacity"],
        default="auto",
        help="importance score: views = summed blending weight over the training views (orbit "
        "views without --cameras; needs torch); area = opacity x projected area; volume = opacity x "
        "volume; opacity. auto = views with --cameras, else area (default auto)",
    )
    red.add_argument(
        "--strategy",
        choices=["merge", "prune"],
        default="merge",
        help="how to reach --keep/--count: merge neighbours into moment-matched gaussians "
        "(keeps coverage) or prune the least important (see --importance) (default merge)",
    )
    red.add_argument(
        "--refit-steps",
        type=_count,
        default=None,
        metavar="N",
        help="after reducing, at most N gradient steps re-fitting opacity, colour, scale and position "
        "to the input's renders from views around it, keeping the best step on held-out views (CPU, "
        f"needs torch; without it the merged result is written, with a note; default {RECOMMENDED_REFIT_STEPS}, "
        "0 = off)",
    )
    red.add_argument(
        "--refit-seconds",
        type=_seconds,
        default=None,
        metavar="S",
        help=f"time budget of the re-fit in seconds (default {RECOMMENDED_REFIT_SECONDS:g} per "
        f"{REFIT_BUDGET_GAUSSIANS:,} gaussians of the input, at least {RECOMMENDED_REFIT_SECONDS:g}, "
        f"at most {RECOMMENDED_REFIT_MAX_SECONDS:g})",
    )
    red.add_argument(
        "--quality",
        action="store_true",
        help="render input and written output from orbit views and print PSNR/SSIM (needs torch)",
    )
    red.add_argument("--views", type=_positive, default=8, help="orbit views for --quality (default 8)")
    red.add_argument("--size", type=_positive, default=128, help="image size for --quality (default 128)")
    red.add_argument(
        "--up", choices=_AXES, help="the input's up axis (default: what the file records, else -y)"
    )
    red.add_argument(
        "--target-up", choices=_AXES, help="up axis to write (default: what the output format expects)"
    )
    add_spz_gzip_level(red, SPZ_SMALLEST_GZIP_LEVEL, "the smallest file, for the web")
    red.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    red.add_argument("--json", action="store_true", help="print the report as one JSON object")
    red.set_defaults(func=cmd_reduce)
    red._negative_number_matcher = _NEG_VALUE

    cmp = sub.add_parser(
        "compare",
        help="render two splats from the same orbit views and print PSNR/SSIM",
        description="Render A (the reference) and B from the same orbit cameras around A's robust "
        "bounds with the CPU rasterizer and print PSNR (dB) and SSIM per view and their mean. "
        "B is rotated into A's frame when their formats use different up axes. Needs torch "
        "(pip install 'foto3d[quality]').",
    )
    cmp.add_argument("a", type=Path, help="reference splat")
    cmp.add_argument("b", type=Path, help="splat to score against A")
    cmp.add_argument("--views", type=_positive, default=8, help="number of orbit views (default 8)")
    cmp.add_argument("--size", type=_positive, default=256, help="image width/height in pixels (default 256)")
    cmp.add_argument(
        "--up", choices=_AXES, help="A's up axis, and B's unless --b-up (default: what each file records)"
    )
    cmp.add_argument("--b-up", choices=_AXES, help="B's up axis (default: --up, else what B records)")
    cmp.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    cmp.set_defaults(func=cmd_compare)
    cmp._negative_number_matcher = _NEG_VALUE


def _bar(label: str, enabled: bool) -> Callable[[str, int, int], None] | None:
    """A progress callback drawing the shared progress bar (only on a terminal)."""
    if not enabled:
        return None
    from foto3d.libs.splat.progress import Progress

    bars: dict[str, Progress] = {}

    def cb(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            unit = "steps" if stage == "re-fitting" else "views"
            bar = bars[stage] = Progress(total, f"{label}: {stage}", unit=unit, enabled=True)
        bar.update(done - bar.done)
        if done >= total:
            bar.__exit__(None, None, None)

    return cb


def _read(path: Path) -> tuple[Splat, str]:
    from foto3d.libs.splat import read
    from foto3d.libs.splat.io import detect_format

    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    fmt = detect_format(path)
    return read(path), fmt


def cmd_reduce(args: argparse.Namespace) -> int:
    from foto3d.libs.splat import SplatFormatError, write
    from foto3d.libs.splat.coords import reorient
    from foto3d.libs.splat.quality import QualityUnavailable, require_torch
    from foto3d.libs.splat.reduce import recommended_refit_seconds, reduce_splat

    src: Path = args.input
    dst: Path = args.output
    try:
        out_fmt = output_format(src, dst, args.force)
    except ValueError as exc:
        return fail(str(exc))
    try:
        if args.quality or args.importance == "views" or args.cameras:
            require_torch()
        splat, in_fmt = _read(src)
        up = input_up(src, in_fmt, args.up)
        target_up = output_up(out_fmt, up, args.target_up)
        keep = args.keep if args.keep is not None else (None if args.count is not None else DEFAULT_KEEP)
        refit_steps = RECOMMENDED_REFIT_STEPS if args.refit_steps is None else args.refit_steps
        refit_seconds = (
            recommended_refit_seconds(splat.count) if args.refit_seconds is None else args.refit_seconds
        )
        progress = _bar("reduce", sys.stderr.isatty() and (splat.count >= 200_000 or refit_steps > 0))
        reduced, report = reduce_splat(
            splat,
            keep=keep,
            count=args.count,
            sh_degree=args.sh_degree,
            min_opacity=args.min_opacity,
            remove_floaters=args.remove_floaters,
            cameras=args.cameras,
            importance_method=args.importance,
            up=up,
            progress=progress,
            strategy=args.strategy,
            refit_steps=refit_steps,
            refit_seconds=refit_seconds,
        )
        written = reorient(reduced, up, target_up) if up != target_up else reduced
        write(written, dst, up=target_up, **format_options(out_fmt, args))
        quality = None
        if args.quality:
            # Score what a viewer will load: the file as written (quantisation included), turned
            # back into the input's frame.
            back, _ = _read(dst)
            if up != target_up:
                back = reorient(back, target_up, up)
            quality = _compare(splat, back, args.views, args.size, up)
    except QualityUnavailable as exc:
        return fail(str(exc))
    except (SplatFormatError, OSError, ValueError) as exc:
        return fail(str(exc))
    in_size, out_size = src.stat().st_size, dst.stat().st_size
    if args.json:
        doc = {
            "input": str(src),
            "output": str(dst),
            "input_bytes": in_size,
            "output_bytes": out_size,
            "size_ratio": in_size / out_size if out_size else None,
            **report.to_dict(),
            "quality": None if quality is None else quality.to_dict(),
        }
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    print(
        f"{src} ({in_fmt}): {in_size:,} bytes, {report.count_before:,} gaussians, SH degree {report.sh_degree_before}"
    )
    print(
        f"{dst} ({out_fmt}): {out_size:,} bytes, {report.count_after:,} gaussians, SH degree {report.sh_degree_after}"
    )
    ratio = in_size / out_size if out_size else math.inf
    print(f"size: {ratio:.1f}x smaller; kept {report.kept_fraction:.1%} ({report.importance_method})")
    if report.removed:
        print(
            "removed: "
            + ", ".join(f"{n:,} {reason.replace('_', ' ')}" for reason, n in report.removed.items())
        )
    else:
        print("removed: nothing")
    if report.refit is not None:
        r = report.refit
        print(
            f"re-fit: kept step {r['best_step']} of {r['steps']} ({r['stopped']}), held-out views "
            f"{r['check_psnr_before']:.2f} -> {r['check_psnr_after']:.2f} dB, {r['seconds']:.0f}s"
        )
    if quality is not None:
        print(f"quality vs input ({len(quality.views)} views, {quality.size}px): {_fmt_scores(quality)}")
    return 0


def _compare(a: Splat, b: Splat, views: int, size: int, up: str) -> QualityReport:
    from foto3d.libs.splat.quality import compare_splats

    bar = _bar("compare", sys.stderr.isatty() and max(a.count, b.count) >= 200_000)
    cb = None if bar is None else (lambda done, total: bar("rendering", done, total))
    return compare_splats(a, b, views=views, size=size, up=up, progress=cb)


def _fmt_scores(q: QualityReport) -> str:
    return f"PSNR {q.psnr:.2f} dB, SSIM {q.ssim:.4f}"


def cmd_compare(args: argparse.Namespace) -> int:
    from foto3d.libs.splat import SplatFormatError
    from foto3d.libs.splat.coords import reorient
    from foto3d.libs.splat.quality import QualityUnavailable, require_torch

    try:
        require_torch()
        a, fa = _read(args.a)
        b, fb = _read(args.b)
        up_a = input_up(args.a, fa, args.up)
        # One convention for both unless told otherwise: --up alone names the frame of A and B.
        up_b = input_up(args.b, fb, args.b_up or args.up)
        if up_a != up_b:
            b = reorient(b, up_b, up_a)
        q = _compare(a, b, args.views, args.size, up_a)
    except QualityUnavailable as exc:
        return fail(str(exc))
    except (SplatFormatError, OSError, ValueError) as exc:
        return fail(str(exc))
    if args.json:
        doc = {"a": str(args.a), "b": str(args.b), "count_a": a.count, "count_b": b.count, **q.to_dict()}
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    print(f"A: {args.a} ({a.count:,} gaussians)   B: {args.b} ({b.count:,} gaussians)   {q.size}px")
    print(f"{'view':>4}  {'PSNR dB':>8}  {'SSIM':>7}")
    for v in q.views:
        print(f"{v.view:>4}  {v.psnr:>8.2f}  {v.ssim:>7.4f}")
    print(f"{'mean':>4}  {q.psnr:>8.2f}  {q.ssim:>7.4f}   ({q.seconds:.1f}s)")
    return 0
