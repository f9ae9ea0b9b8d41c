"""Files kept in a JetStream object store, read through a local cache folder.

For files that must outlive the disk of the instance that wrote them (a service's images,
say): the bucket is replicated like the streams, every instance reads through it, and the
folder only caches what this instance has read or written. Files that were only in the
folder before the bucket existed are uploaded once (``upload_local``), and a lost folder
comes back from the bucket (``restore``). All file work runs off the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterable
from pathlib import Path

from nats.js.errors import NotFoundError
from nats.js.object_store import ObjectStore

from foto3d.libs.bus.connection import Bus

log = logging.getLogger(__name__)


def _write_atomically(path: Path, data: bytes) -> None:
    """A reader never sees half a file (two readers may fill the cache at once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{id(data)}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _first_file(folder: Path, names: Iterable[str]) -> Path | None:
    for name in names:
        p = folder / name
        if p.is_file():
            return p
    return None


class BucketFiles:
    """The object store ``bucket``, cached in ``folder``; only files ending in ``suffixes``
    count (the cache's temporary files and anything else in the folder are not uploaded)."""

    def __init__(self, bus: Bus, bucket: str, folder: Path, suffixes: Iterable[str]) -> None:
        self.bus = bus
        self.bucket = bucket
        self.folder = folder
        self.suffixes = tuple(suffixes)
        self._store: ObjectStore | None = None

    async def _bucket(self) -> ObjectStore:
        if self._store is None:
            self._store = await self.bus.js.object_store(self.bucket)
        return self._store

    async def put(self, name: str, data: bytes) -> Path:
        """Store ``data`` in the bucket first (so whatever is published after it names a file
        every instance can read), then in the cache; returns the cache file."""
        bucket = await self._bucket()
        await bucket.put(name, data)
        path = self.folder / name
        await asyncio.to_thread(_write_atomically, path, data)
        return path

    async def discard(self, name: str) -> None:
        """Remove the cache file only: the bucket's copy may be another writer's by now."""
        await asyncio.to_thread((self.folder / name).unlink, missing_ok=True)

    async def first(self, names: Iterable[str]) -> Path | None:
        """The cache file of the first of ``names`` that exists, here or (fetched into the
        cache) in the bucket; None when none does or the bucket is not provisioned."""
        candidates = list(names)
        found = await asyncio.to_thread(_first_file, self.folder, candidates)
        if found is not None:
            return found
        try:
            bucket = await self._bucket()
        except NotFoundError:  # not provisioned (a bus without the service's topology)
            return None
        for name in candidates:
            try:
                result = await bucket.get(name)
            except NotFoundError:
                continue
            path = self.folder / name
            await asyncio.to_thread(_write_atomically, path, bytes(result.data or b""))
            return path
        return None

    async def names(self) -> set[str]:
        """Every file name in the bucket."""
        try:
            bucket = await self._bucket()
            infos = await bucket.list(ignore_deletes=True)
        except NotFoundError:  # no bucket (not provisioned) or an empty one
            return set()
        return {i.name for i in infos if i.name and not i.deleted}

    def _local_files(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        return sorted(
            p
            for p in self.folder.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in self.suffixes
        )

    async def local_names(self) -> set[str]:
        """The names of the files in the cache folder."""
        return {p.name for p in await asyncio.to_thread(self._local_files)}

    async def upload_local(self) -> int:
        """Put the folder's files the bucket lacks into it (those from before the bucket);
        idempotent. Returns how many were uploaded."""
        have = await self.names()
        uploaded = 0
        bucket = await self._bucket()
        for path in await asyncio.to_thread(self._local_files):
            if path.name in have:
                continue
            data = await asyncio.to_thread(path.read_bytes)
            await bucket.put(path.name, data)
            uploaded += 1
        if uploaded:
            log.info("%d local file(s) of %s uploaded to the bucket %s", uploaded, self.folder, self.bucket)
        return uploaded

    async def restore(self) -> set[str]:
        """Fetch every file of the bucket the folder lacks; returns every name the bucket holds."""
        held = await self.names()
        for name in sorted(held):
            if await asyncio.to_thread((self.folder / name).is_file):
                continue
            bucket = await self._bucket()
            result = await bucket.get(name)
            await asyncio.to_thread(_write_atomically, self.folder / name, bytes(result.data or b""))
        return held
