"""The splat reduction step: prune the exported splat and write the requested formats.

This is the one place that knows how reduction is done. When the splat
library's reducer (``foto3d.libs.splat.reduce``) is installed it is used;
until then the exported ``splat.ply`` is copied unchanged and the job's
metrics say ``reduced: 0``, so nobody mistakes a full splat for a reduced one.
"""

from __future__ import annotations

import importlib
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from foto3d.proto.jobs import TrainOptions

log = logging.getLogger(__name__)

# Output file name per format name used in TrainOptions.formats.
FORMAT_FILES = {
    "ply": "model.ply",
    "spz": "model.spz",
    "splat": "model.splat",
    "compressed.ply": "model.compressed.ply",
    "compressed-ply": "model.compressed.ply",
    "sog": "model.sog",
}


@dataclass
class ReducedOutput:
    files: dict[str, Path]  # format -> file
    gaussians_in: int
    gaussians_out: int
    reduced: bool
    failed_formats: dict[str, str] = field(default_factory=dict)


def ply_vertex_count(path: Path) -> int:
    """Number of gaussians in a PLY, from its header alone (cheap for multi-GB files)."""
    with path.open("rb") as f:
        head = f.read(64 * 1024)
    end = head.find(b"end_header")
    if not head.startswith(b"ply") or end < 0:
        raise ValueError(f"{path} is not a PLY file")
    for line in head[:end].decode("ascii", errors="replace").splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "element" and parts[1] == "vertex":
            return int(parts[2])
    raise ValueError(f"{path}: PLY header has no vertex element")


def _optional(module: str) -> Any | None:
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def reducer_available() -> bool:
    return _optional("foto3d.libs.splat.reduce") is not None


def load_training_cameras(transforms: Path | None, dataparser: Path | None) -> Any | None:
    """The training cameras in the exported splat's frame, when the splat library can read them.

    nerfstudio exports the splat in its normalised world frame; ``dataparser_transforms.json``
    (written next to config.yml) maps the dataset's poses into it.
    """
    cams_mod = _optional("foto3d.libs.splat.cameras")
    if cams_mod is None or transforms is None or not transforms.is_file():
        return None
    try:
        dp = dataparser if dataparser is not None and dataparser.is_file() else None
        return cams_mod.load_cameras(transforms, dataparser=dp)
    except Exception as exc:
        log.info("training cameras not used for reduction: %s", exc)
        return None


def reduce_export(
    src: Path,
    out_dir: Path,
    options: TrainOptions,
    warn: Callable[[str], None] | None = None,
    cameras: Any | None = None,
    method: str = "auto",
) -> ReducedOutput:
    """Blocking: run it in a thread. ``src`` is nerfstudio's ``splat.ply``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    gaussians_in = ply_vertex_count(src)
    splat_lib = _optional("foto3d.libs.splat")
    reduce_mod = _optional("foto3d.libs.splat.reduce") if options.reduce else None
    master = out_dir / FORMAT_FILES["ply"]
    splat: Any = None
    reduced = False
    if reduce_mod is not None and splat_lib is not None:
        splat = splat_lib.read(src)
        splat, report = reduce_mod.reduce_splat(
            splat,
            keep=options.reduce_keep,
            sh_degree=options.sh_degree,
            cameras=cameras,
            importance_method=method,
        )
        splat_lib.write(splat, master)
        reduced = True
        log.info("reduced %s: %s", src, report.to_dict())
    else:
        shutil.copyfile(src, master)
    files = {"ply": master}
    failed: dict[str, str] = {}
    for fmt in options.formats:
        if fmt == "ply":
            continue
        name = FORMAT_FILES.get(fmt)
        if name is None or splat_lib is None:
            failed[fmt] = "unknown format" if name is None else "splat library not installed"
            continue
        try:
            if splat is None:
                splat = splat_lib.read(master)
            splat_lib.write(splat, out_dir / name)
            files[fmt] = out_dir / name
        except Exception as exc:  # one format failing must not lose the others
            failed[fmt] = str(exc)[:300]
    for fmt, why in failed.items():
        msg = f"format {fmt} not written: {why}"
        log.warning(msg)
        if warn:
            warn(msg)
    return ReducedOutput(
        files=files,
        gaussians_in=gaussians_in,
        gaussians_out=ply_vertex_count(master),
        reduced=reduced,
        failed_formats=failed,
    )
