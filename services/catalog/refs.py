"""Reference images in the ``catalog-refs`` object store, with a local cache file each.

The bucket is replicated like the catalog's streams, so an image outlives the disk of the
instance that took it: the leader writes it there before publishing the event that names it,
every instance (a standby serving a page) reads through it, and a rebuild restores the files
from it. The files under ``<data>/catalog/refs/`` are only a cache (and, from before the
bucket, the originals: the leader uploads any the bucket lacks once at start).
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from nats.js.errors import NotFoundError
from nats.js.object_store import ObjectStore

from foto3d.libs.bus.connection import Bus
from foto3d.proto.permissions import CATALOG_REFS_BUCKET

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def _write_atomically(path: Path, data: bytes) -> None:
    """A reader never sees half a file (two readers may fill the cache at once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{id(data)}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _cached(folder: Path, object_id: str) -> Path | None:
    for suffix in IMAGE_SUFFIXES:
        p = folder / f"{object_id}{suffix}"
        if p.is_file():
            return p
    return None


def _local_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in IMAGE_SUFFIXES)


class ReferenceImages:
    """The bucket, read through a cache folder."""

    def __init__(self, bus: Bus, folder: Path) -> None:
        self.bus = bus
        self.folder = folder
        self._store: ObjectStore | None = None

    async def _bucket(self) -> ObjectStore:
        if self._store is None:
            self._store = await self.bus.js.object_store(CATALOG_REFS_BUCKET)
        return self._store

    async def put(self, object_id: str, suffix: str, image: bytes) -> Path:
        """Store the image in the bucket (first: the event naming it is published after), then
        in the cache; returns the cache file."""
        bucket = await self._bucket()
        await bucket.put(f"{object_id}{suffix}", image)
        path = self.folder / f"{object_id}{suffix}"
        await asyncio.to_thread(_write_atomically, path, image)
        return path

    async def discard(self, object_id: str, suffix: str) -> None:
        """Undo a ``put`` whose event was refused (another writer took the id) here only: the
        bucket's copy may already be the other writer's image under the same name, so it
        stays (docs/failover.md)."""
        await asyncio.to_thread((self.folder / f"{object_id}{suffix}").unlink, missing_ok=True)

    async def path(self, object_id: str) -> Path | None:
        """The cache file of ``object_id``'s image, fetched from the bucket when missing here."""
        found = await asyncio.to_thread(_cached, self.folder, object_id)
        if found is not None:
            return found
        try:
            bucket = await self._bucket()
        except NotFoundError:  # not provisioned (a bus without the catalog's topology)
            return None
        for suffix in IMAGE_SUFFIXES:
            name = f"{object_id}{suffix}"
            try:
                result = await bucket.get(name)
            except NotFoundError:
                continue
            path = self.folder / name
            await asyncio.to_thread(_write_atomically, path, bytes(result.data or b""))
            return path
        return None

    async def names(self) -> set[str]:
        """Every image name (``<object_id><suffix>``) in the bucket."""
        try:
            bucket = await self._bucket()
            infos = await bucket.list(ignore_deletes=True)
        except NotFoundError:  # no bucket (not provisioned) or an empty one
            return set()
        return {i.name for i in infos if i.name and not i.deleted}

    async def upload_local(self) -> int:
        """Put the cache folder's files the bucket lacks into it (those from before the bucket);
        idempotent. Returns how many were uploaded."""
        have = await self.names()
        uploaded = 0
        bucket = await self._bucket()
        for path in await asyncio.to_thread(_local_files, self.folder):
            if path.name in have:
                continue
            data = await asyncio.to_thread(path.read_bytes)
            await bucket.put(path.name, data)
            uploaded += 1
        if uploaded:
            log.info("catalog: %d local reference image(s) uploaded to %s", uploaded, CATALOG_REFS_BUCKET)
        return uploaded

    async def restore(self) -> set[str]:
        """Fetch every image of the bucket into the cache folder; returns the object ids held."""
        held: set[str] = set()
        for name in sorted(await self.names()):
            object_id, suffix = os.path.splitext(name)
            held.add(object_id)
            if await asyncio.to_thread((self.folder / name).is_file):
                continue
            bucket = await self._bucket()
            result = await bucket.get(name)
            await asyncio.to_thread(
                _write_atomically, self.folder / f"{object_id}{suffix}", bytes(result.data or b"")
            )
        return held
