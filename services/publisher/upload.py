"""Publishing one approved version: gather the splat files, make the viewer config and
thumbnail, upload whatever is not already there, and say where it all lives.

Key layout (all under the store's prefix)::

    models/<customer>/<object_id>/v<N>/<object_id><suffix>    every splat format the job made
    models/<customer>/<object_id>/v<N>/viewer.json            default camera, bounds, file links
    models/<customer>/<object_id>/v<N>/thumbnail.png          small preview

Versioned keys never change content, so they are served ``immutable``. The viewer config
and thumbnail are deterministic functions of the splat, so a second publish of the same
version finds every file already there (same SHA-256) and uploads nothing.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec

from foto3d.libs.splat import SplatFormatError
from foto3d.libs.splat import read as read_splat
from foto3d.libs.splat.formats.registry import get as get_format
from foto3d.libs.splat.model import Splat
from foto3d.libs.storage.artifacts import fetch_artifact as fetch_checked
from foto3d.libs.storage.base import BlobStore, StorageError, sha256_file
from foto3d.libs.viewer.config import TRAINER_UP, ViewerFile, build_viewer_config, decoded_up, file_up
from foto3d.libs.viewer.thumbnail import render_thumbnail
from foto3d.proto.jobs import Artifact, UpAxis
from foto3d.proto.objects import PublishedFile, PublishRequest

IMMUTABLE = "public, max-age=31536000, immutable"


class PublishError(RuntimeError):
    """Publishing failed; the message says which file and why."""


@dataclass(frozen=True)
class PlannedFile:
    kind: str
    format: str
    key: str
    path: Path
    content_type: str
    up: UpAxis | None = None  # splats: the file's up axis as stored (Artifact.up)


# (file key, bytes done, bytes total, files done, files total)
ProgressFn = Callable[[str, int, int, int, int], None]
UrlFn = Callable[[str], str]


def version_prefix(req: PublishRequest) -> str:
    return f"models/{req.customer}/{req.object_id}/v{req.version}"


async def fetch_artifact(artifact: Artifact, dest_dir: Path, open_store: Callable[[str], BlobStore]) -> Path:
    """A local path holding the artifact's bytes, checked against its recorded SHA-256."""
    try:
        return await fetch_checked(artifact.uri, artifact.sha256, dest_dir, open_store)
    except StorageError as exc:
        raise PublishError(str(exc)) from exc


def stored_up(art: Artifact) -> UpAxis:
    """The artifact's up axis as stored: recorded by the trainer, else what trainers that did not
    record it wrote (nerfstudio's +Z-up data, through the format's storage turn)."""
    return art.up or file_up(art.format)


def _read_for_preview(files: list[tuple[Artifact, Path]]) -> tuple[Splat, UpAxis] | None:
    """The splat to frame and preview, with its up axis as decoded: the .ply when there is one,
    else any readable format."""
    ordered = sorted(files, key=lambda f: (f[0].format != "ply", f[0].format))
    for art, path in ordered:
        try:
            return read_splat(path), decoded_up(art.format, stored_up(art))
        except Exception:  # a format the reader does not handle yet: try the next one
            continue
    return None


async def prepare(
    req: PublishRequest, url_of: UrlFn, work: Path, open_store: Callable[[str], BlobStore], thumb_size: int
) -> list[PlannedFile]:
    splats = [a for a in req.artifacts if a.kind == "splat"]
    if not splats:
        raise PublishError(f"job {req.job_id} produced no splat files to publish")
    local: list[tuple[Artifact, Path]] = []
    for art in splats:
        local.append((art, await fetch_artifact(art, work, open_store)))
    prefix = version_prefix(req)
    planned: list[PlannedFile] = []
    viewer_files: list[ViewerFile] = []
    for art, path in local:
        try:
            spec = get_format(art.format)
        except SplatFormatError as exc:
            raise PublishError(f"artifact {art.uri}: {exc}") from exc
        key = f"{prefix}/{req.object_id}{spec.suffixes[0]}"
        content_type = spec.content_type
        up = stored_up(art)
        planned.append(PlannedFile("splat", art.format, key, path, content_type, up))
        viewer_files.append(
            ViewerFile(
                format=spec.name,  # type: ignore[arg-type]  # a registry name, which SplatFormatName lists
                url=url_of(key),
                bytes=path.stat().st_size,
                sha256=art.sha256,
                up=up,
                content_type=content_type,
            )
        )
    preview = await asyncio.to_thread(_read_for_preview, local)
    splat, memory_up = preview if preview is not None else (None, TRAINER_UP)
    # where the training cameras looked most (the trainer's record): the side the viewer and the
    # thumbnail open on
    front = next((a.front_azimuth for a in splats if a.front_azimuth is not None), None)
    thumb_key = f"{prefix}/thumbnail.png"
    if splat is not None:
        png = await asyncio.to_thread(render_thumbnail, splat, thumb_size, up=memory_up, front_azimuth=front)
        thumb_path = work / "thumbnail.png"
        thumb_path.write_bytes(png)
        planned.append(PlannedFile("thumbnail", "png", thumb_key, thumb_path, "image/png"))
    config = build_viewer_config(
        splat,
        object_id=req.object_id,
        name=req.display_name or req.object_id,
        model_version=req.version,
        files=viewer_files,
        thumbnail=url_of(thumb_key) if splat is not None else "",
        settings=req.viewer,  # the reviewer's saved adjustments, if any
        memory_up=memory_up,
        front_azimuth=front,
    )
    config_path = work / "viewer.json"
    config_path.write_bytes(msgspec.json.format(msgspec.json.encode(config), indent=2))
    planned.append(
        PlannedFile("viewer_config", "json", f"{prefix}/viewer.json", config_path, "application/json")
    )
    return planned


async def upload(
    store: BlobStore, planned: list[PlannedFile], url_of: UrlFn, progress: ProgressFn | None = None
) -> tuple[list[PublishedFile], int]:
    """Upload what is missing or different; returns the files and how many were sent."""
    out: list[PublishedFile] = []
    sent = 0
    total = len(planned)
    for i, f in enumerate(planned):
        digest = await asyncio.to_thread(sha256_file, f.path)
        size = f.path.stat().st_size
        try:
            have = await store.head(f.key)
        except StorageError as exc:
            raise PublishError(str(exc)) from exc
        if have is None or have.sha256 != digest or have.size != size:

            def report(done: int, of: int, key: str = f.key, idx: int = i) -> None:
                if progress:
                    progress(key, done, of, idx, total)

            try:
                await store.put_file(
                    f.key, f.path, content_type=f.content_type, cache_control=IMMUTABLE, progress=report
                )
            except StorageError as exc:
                raise PublishError(str(exc)) from exc
            sent += 1
        if progress:
            progress(f.key, size, size, i + 1, total)
        out.append(
            PublishedFile(
                kind=f.kind,
                format=f.format,
                key=f.key,
                url=url_of(f.key),
                bytes=size,
                sha256=digest,
                content_type=f.content_type,
                up=f.up,
            )
        )
    return out, sent


def work_dir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="f3d-publish-")
