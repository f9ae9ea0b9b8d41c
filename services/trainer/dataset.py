"""Find a job's dataset on this host and decide whether it needs ``ns-process-data``.

A dataset is a folder (``/data/x`` or ``file:///data/x``) or an archive
(``.zip``, ``.tar``, ``.tar.gz``, ``.tgz``) given as a path or as
``s3://bucket/key``; archives are fetched through the blob store and unpacked
into the job's work folder, which is how a cloud trainer gets its photos.
An ``s3://bucket/prefix/`` that is no archive is a folder a rig uploaded: it is
fetched file by file against the rig's manifest (``s3_folder``).
"""

from __future__ import annotations

import asyncio
import shutil
import tarfile
import zipfile
from pathlib import Path

from foto3d.libs.storage import open_store
from foto3d.services.trainer.preflight import PreflightError, check_dataset
from foto3d.services.trainer.s3_folder import fetch_folder

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff"})


def is_archive(uri: str) -> bool:
    return uri.lower().endswith(ARCHIVE_SUFFIXES)


def _unpack(archive: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    if archive.name.lower().endswith(".zip"):
        with zipfile.ZipFile(archive) as z:
            for name in z.namelist():
                target = (dest / name).resolve()
                if not target.is_relative_to(dest.resolve()):
                    raise PreflightError(f"archive {archive.name} has an unsafe path {name!r}")
            z.extractall(dest)
    else:
        with tarfile.open(archive) as t:
            t.extractall(dest, filter="data")
    entries = [p for p in dest.iterdir() if not p.name.startswith(".")]
    # An archive of one top folder: use that folder.
    if len(entries) == 1 and entries[0].is_dir():
        inner = entries[0]
        for child in inner.iterdir():
            shutil.move(str(child), dest / child.name)
        inner.rmdir()


async def fetch_dataset(uri: str, workdir: Path) -> Path:
    """A local folder holding the dataset; raises PreflightError with the reason if there is none."""
    if uri.startswith("s3://"):
        if not is_archive(uri):
            folder = await fetch_folder(uri, workdir / "dataset")
            await asyncio.to_thread(check_dataset, folder)
            return folder
        bucket, _, key = uri[5:].partition("/")
        archive = workdir / "download" / Path(key).name
        archive.parent.mkdir(parents=True, exist_ok=True)
        try:
            await open_store(f"s3://{bucket}").get_file(key, archive)
        except Exception as exc:
            raise PreflightError(f"dataset {uri} cannot be downloaded: {exc}") from exc
    else:
        local = Path(uri.removeprefix("file://")).expanduser()
        if not is_archive(uri):
            await asyncio.to_thread(check_dataset, local)
            return local
        if not local.is_file():
            raise PreflightError(f"dataset archive {local} does not exist on this trainer")
        archive = local
    dest = workdir / "dataset"
    try:
        await asyncio.to_thread(_unpack, archive, dest)
    except (zipfile.BadZipFile, tarfile.TarError, OSError) as exc:
        raise PreflightError(f"dataset archive {archive.name} cannot be unpacked: {exc}") from exc
    await asyncio.to_thread(check_dataset, dest)
    return dest


def image_folder(path: Path) -> Path | None:
    """Where the raw photos are: the folder itself or its ``images/`` subfolder."""
    for candidate in (path, path / "images"):
        if candidate.is_dir() and any(p.suffix.lower() in IMAGE_SUFFIXES for p in candidate.iterdir()):
            return candidate
    return None


def needs_processing(path: Path, requested: bool | None) -> bool:
    """``options.process_data`` wins; otherwise raw images without ``transforms.json`` need it."""
    if requested is not None:
        return requested
    return not (path / "transforms.json").is_file()
