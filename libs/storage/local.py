"""A folder as a blob store (the `foto3d up` default)."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

from foto3d.libs.storage.base import BlobInfo, BlobStore, ProgressFn, StorageError, sha256_file


class LocalStore(BlobStore):
    def __init__(self, root: Path) -> None:
        self.root = root.expanduser().resolve()

    def _path(self, key: str) -> Path:
        p = (self.root / key).resolve()
        if not p.is_relative_to(self.root):
            raise StorageError(f"key {key!r} escapes the store")
        return p

    def uri(self, key: str) -> str:
        return self._path(key).as_uri()

    async def put_file(
        self,
        key: str,
        path: Path,
        *,
        content_type: str | None = None,
        cache_control: str | None = None,
        progress: ProgressFn | None = None,
    ) -> BlobInfo:
        dest = self._path(key)

        def copy() -> BlobInfo:
            dest.parent.mkdir(parents=True, exist_ok=True)
            src_sum = sha256_file(path)
            existing = (
                dest.exists() and dest.stat().st_size == path.stat().st_size and sha256_file(dest) == src_sum
            )
            if not existing:
                tmp = dest.with_name(dest.name + ".part")
                shutil.copyfile(path, tmp)
                if sha256_file(tmp) != src_sum:
                    tmp.unlink(missing_ok=True)
                    raise StorageError(f"checksum mismatch writing {key}")
                os.replace(tmp, dest)
            size = dest.stat().st_size
            if progress:
                progress(size, size)
            return BlobInfo(key=key, size=size, sha256=src_sum, content_type=content_type, uri=dest.as_uri())

        return await asyncio.to_thread(copy)

    async def head(self, key: str) -> BlobInfo | None:
        p = self._path(key)

        def stat() -> BlobInfo | None:
            if not p.is_file():
                return None
            return BlobInfo(key=key, size=p.stat().st_size, sha256=sha256_file(p), uri=p.as_uri())

        return await asyncio.to_thread(stat)

    async def get_file(self, key: str, dest: Path) -> Path:
        src = self._path(key)
        if not src.is_file():
            raise StorageError(f"no blob {key!r} in {self.root}")
        await asyncio.to_thread(shutil.copyfile, src, dest)
        return dest

    async def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)
