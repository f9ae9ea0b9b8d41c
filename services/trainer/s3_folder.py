"""Download a dataset a rig uploaded to S3 as a folder, checking it against the rig's manifest.

A rig uploads each photo as its own object under ``datasets/<rig>/<request>/`` and the
manifest (``DATASET_MANIFEST``, a ``RigDataset``) last. The manifest is the list of what to
fetch, not the bucket's listing: a stray object in the folder is ignored, a file the manifest
names but S3 lacks is an error, and every file's size and SHA-256 must match before the
job may start, so a trainer never trains on half a dataset or on bytes that changed in transit.
"""

from __future__ import annotations

import asyncio
from pathlib import Path, PurePosixPath

import msgspec

from foto3d.libs.storage.base import StorageError, sha256_file
from foto3d.libs.storage.s3 import S3Store
from foto3d.proto.rig import DATASET_MANIFEST, DatasetFile, RigDataset
from foto3d.services.trainer.preflight import PreflightError

MANIFEST_LIMIT = 64 * 1024 * 1024  # a manifest of ~300k files; far beyond any capture


def _safe_target(dest: Path, rel: str) -> Path:
    """Where ``rel`` goes under ``dest``; a path that climbs out (``..``, absolute) is refused."""
    parts = PurePosixPath(rel).parts
    if not parts or rel.startswith("/") or any(p in ("", "..") for p in parts):
        raise PreflightError(f"dataset manifest names an unsafe path {rel!r}")
    return dest.joinpath(*parts)


async def read_manifest(store: S3Store, uri: str) -> RigDataset:
    try:
        data = await store.get_bytes(DATASET_MANIFEST, MANIFEST_LIMIT)
    except StorageError as exc:
        raise PreflightError(
            f"dataset {uri}: no readable manifest {DATASET_MANIFEST} ({exc}); an S3 dataset is either one "
            "archive (.zip, .tar.gz) or a folder a rig uploaded completely, manifest last"
        ) from exc
    try:
        return msgspec.json.decode(data, type=RigDataset)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise PreflightError(f"dataset {uri}: its manifest {DATASET_MANIFEST} is not valid: {exc}") from exc


def _check(path: Path, f: DatasetFile, uri: str) -> None:
    size = path.stat().st_size
    if size != f.size:
        raise PreflightError(
            f"dataset {uri}: {f.path} is {size} bytes in S3 but {f.size} in the manifest; "
            "refusing to train on a dataset that differs from what the rig captured"
        )
    digest = sha256_file(path)
    if digest != f.sha256:
        raise PreflightError(
            f"dataset {uri}: {f.path} has SHA-256 {digest} in S3 but {f.sha256} in the manifest; "
            "refusing to train on a dataset that differs from what the rig captured"
        )


async def fetch_folder(uri: str, dest: Path) -> Path:
    """Download ``s3://bucket/prefix/`` into ``dest``, every file checked; PreflightError says why not."""
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    store = S3Store(bucket=bucket, prefix=prefix)
    ds = await read_manifest(store, uri)
    if not ds.files:
        raise PreflightError(f"dataset {uri}: its manifest lists no files")
    dest.mkdir(parents=True, exist_ok=True)
    for f in ds.files:
        target = _safe_target(dest, f.path)
        try:
            await store.get_file(f.path, target)
        except StorageError as exc:
            raise PreflightError(f"dataset {uri}: {f.path} cannot be downloaded: {exc}") from exc
        await asyncio.to_thread(_check, target, f, uri)
    return dest
