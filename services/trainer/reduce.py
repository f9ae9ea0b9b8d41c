"""The splat reduction step: reduce nerfstudio's exported splat and write the requested formats.

The splat library (``foto3d.libs.splat``) is a hard dependency: a trainer that cannot reduce
must fail loudly, not publish the full splat under a reduced name. Formats, their file names
and their up axes come from the library's format registry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from foto3d.libs.splat import read, up_axis, write
from foto3d.libs.splat.cameras import Camera, load_cameras
from foto3d.libs.splat.coords import reorient
from foto3d.libs.splat.errors import SplatFormatError
from foto3d.libs.splat.formats.plyfile import read_header
from foto3d.libs.splat.formats.registry import get as get_format
from foto3d.libs.splat.formats.spz import SMALLEST_GZIP_LEVEL
from foto3d.libs.splat.model import Splat
from foto3d.libs.splat.quality import QualityUnavailable, compare_splats
from foto3d.libs.splat.reduce import recommended_refit_seconds, reduce_splat
from foto3d.libs.viewer.config import robust_bounds
from foto3d.libs.viewer.opening import camera_azimuth
from foto3d.proto.jobs import TrainOptions, UpAxis

log = logging.getLogger(__name__)

#: nerfstudio's world is +Z up, and ``ns-export gaussian-splat`` says so in its header; this is
#: the fallback for an export that does not.
NERFSTUDIO_UP = "z"


@dataclass
class ReducedOutput:
    files: dict[str, Path]  # format name -> file
    gaussians_in: int
    gaussians_out: int
    reduced: bool
    up: dict[str, UpAxis] = field(default_factory=dict)  # format name -> its file's up axis as stored
    failed_formats: dict[str, str] = field(default_factory=dict)
    source_up: UpAxis = "z"  # the export's own up axis (the unreduced file is kept as exported)
    # PSNR (dB) / SSIM of the reduced splat's renders against the unreduced one's; None when not measured.
    psnr: float | None = None
    ssim: float | None = None
    refit: dict[str, object] | None = None  # the re-fit's RefitResult.to_dict(), when one ran
    # The side the training cameras looked at most (libs/viewer/opening.py), None when unknown.
    front_azimuth: float | None = None


def file_name(fmt: str) -> str:
    """``model`` plus the format's suffix (``model.compressed.ply``)."""
    return "model" + get_format(fmt).suffixes[0]


def ply_vertex_count(path: Path) -> int:
    """Number of gaussians in a PLY, from its header alone (cheap for multi-GB files)."""
    with path.open("rb") as f:
        header = read_header(f, str(path))
    vertex = header.element("vertex")
    if vertex is None:
        raise SplatFormatError(f"{path}: PLY header has no vertex element")
    return vertex.count


def load_training_cameras(transforms: Path | None, dataparser: Path | None) -> list[Camera] | None:
    """The training cameras in the exported splat's frame, or None when the dataset has none.

    nerfstudio exports the splat in its normalised world frame; ``dataparser_transforms.json``
    (written next to config.yml) maps the dataset's poses into it.
    """
    if transforms is None or not transforms.is_file():
        return None
    try:
        dp = dataparser if dataparser is not None and dataparser.is_file() else None
        return load_cameras(transforms, dataparser=dp)
    except SplatFormatError as exc:
        log.info("training cameras not used for reduction: %s", exc)
        return None


def reduce_export(
    src: Path,
    out_dir: Path,
    options: TrainOptions,
    warn: Callable[[str], None] | None = None,
    cameras: Sequence[Camera] | None = None,
    method: str = "auto",
    quality_views: int = 0,
    *,
    refit_steps: int = 0,
    refit_seconds: float = 0.0,
    progress: Callable[[int, int], None] | None = None,
) -> ReducedOutput:
    """Blocking: run it in a thread. ``src`` is nerfstudio's ``splat.ply``.

    With ``refit_steps`` > 0 the reduced splat is re-fitted to the export's renders
    (``libs/splat/refit.py``) within ``refit_seconds`` (0 = the CLI's budget for this many
    gaussians); ``progress(done, total)`` follows its steps. With ``quality_views`` > 0 and a
    reduction, the reduced splat is scored against the unreduced one from that many orbit views
    (needs torch; skipped with a note without it), so the reviewer sees what the reduction cost
    next to what it saved."""
    out_dir.mkdir(parents=True, exist_ok=True)
    gaussians_in = ply_vertex_count(src)
    recorded, known = up_axis(src, "ply")
    src_up = recorded if known else NERFSTUDIO_UP
    splat = original = read(src)
    front = training_front(cameras, original, src_up)
    refit: dict[str, object] | None = None
    if options.reduce:
        splat, report = reduce_splat(
            splat,
            keep=options.reduce_keep,
            sh_degree=options.sh_degree,
            cameras=cameras,
            importance_method=method,
            up=src_up,
            refit_steps=refit_steps,
            refit_seconds=refit_seconds or recommended_refit_seconds(original.count),
            progress=None if progress is None else _refit_progress(progress),
        )
        log.info("reduced %s: %s", src, report.to_dict())
        refit = report.refit
        if warn:
            for note in report.notes:
                warn(note)
    quality = _score_reduction(original, splat, src_up, quality_views, warn) if options.reduce else None
    master = out_dir / file_name("ply")
    write(splat, master, up=src_up)
    files = {"ply": master}
    # Recorded per file as stored (the one notion of ``UpAxis``), not as decoded: for .spz the two differ.
    ups: dict[str, UpAxis] = {"ply": cast(UpAxis, get_format("ply").stored_up(src_up))}
    failed: dict[str, str] = {}
    for fmt in options.formats:
        if fmt == "ply":
            continue
        target_up = get_format(fmt).up or src_up
        try:
            turned = reorient(splat, src_up, target_up) if target_up != src_up else splat
            # Written once, fetched by every visitor: the smallest gzip .spz has.
            opts: dict[str, Any] = {"compresslevel": SMALLEST_GZIP_LEVEL} if fmt == "spz" else {}
            write(turned, out_dir / file_name(fmt), up=target_up, **opts)
        except (SplatFormatError, OSError, ValueError) as exc:  # one format failing must not lose the others
            failed[fmt] = str(exc)[:300]
            continue
        files[fmt] = out_dir / file_name(fmt)
        ups[fmt] = cast(UpAxis, get_format(fmt).stored_up(target_up))
    for name, why in failed.items():
        msg = f"format {name} not written: {why}"
        log.warning(msg)
        if warn:
            warn(msg)
    return ReducedOutput(
        files=files,
        gaussians_in=gaussians_in,
        gaussians_out=splat.count,
        reduced=options.reduce,
        up=ups,
        failed_formats=failed,
        source_up=cast(UpAxis, get_format("ply").stored_up(src_up)),
        psnr=quality[0] if quality else None,
        ssim=quality[1] if quality else None,
        refit=refit,
        front_azimuth=front,
    )


def training_front(cameras: Sequence[Camera] | None, splat: Splat, up: str) -> float | None:
    """Where the viewer should open: the side of the exported object the training cameras
    looked at most (cameras and splat in the export's frame, whose up axis is ``up``)."""
    if not cameras:
        return None
    center = robust_bounds(splat).center
    return camera_azimuth([c.position for c in cameras], center, up)


def _refit_progress(progress: Callable[[int, int], None]) -> Callable[[str, int, int], None]:
    def stage(name: str, done: int, total: int) -> None:
        if name == "re-fitting":  # the one stage of the reduction that takes minutes
            progress(done, total)

    return stage


#: Render size of the reduction's quality check: enough to see lost detail, cheap on a CPU.
QUALITY_SIZE = 128


def _score_reduction(
    original: Splat, reduced: Splat, up: str, views: int, warn: Callable[[str], None] | None
) -> tuple[float, float] | None:
    if views <= 0:
        return None
    try:
        report = compare_splats(original, reduced, views=views, size=QUALITY_SIZE, up=up)
    except QualityUnavailable as exc:
        msg = f"reduction quality not measured: {exc}"
        log.info(msg)
        if warn:
            warn(msg)
        return None
    # identical renders give +inf: kept finite (99 dB reads as "no visible change") for the metrics
    return min(report.psnr, 99.0), report.ssim
