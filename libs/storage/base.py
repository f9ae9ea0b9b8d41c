"""The blob store interface."""

from __future__ import annotations

import abc
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ProgressFn = Callable[[int, int], None]  # (bytes done, bytes total)


class StorageError(RuntimeError):
    """A store operation failed; the message says which key and why."""


@dataclass(frozen=True)
class BlobInfo:
    key: str
    size: int
    sha256: str | None
    content_type: str | None = None
    uri: str = ""


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


class BlobStore(abc.ABC):
    """Keys are '/'-separated relative paths, e.g. ``artifacts/<job>/model.spz``."""

    @abc.abstractmethod
    async def put_file(
        self,
        key: str,
        path: Path,
        *,
        content_type: str | None = None,
        cache_control: str | None = None,
        progress: ProgressFn | None = None,
    ) -> BlobInfo:
        """Store ``path`` under ``key``; verified by checksum; returns what was stored."""

    @abc.abstractmethod
    async def head(self, key: str) -> BlobInfo | None:
        """Size and checksum of ``key``, or None when absent."""

    @abc.abstractmethod
    async def get_file(self, key: str, dest: Path) -> Path:
        """Copy ``key`` to ``dest``."""

    @abc.abstractmethod
    async def delete(self, key: str) -> None: ...

    @abc.abstractmethod
    def uri(self, key: str) -> str:
        """Stable URI for ``key`` (``file://`` or ``s3://``)."""


def open_store(uri: str) -> BlobStore:
    """``file:///path`` or a plain path -> local folder; ``s3://bucket/prefix`` -> S3."""
    if uri.startswith("s3://"):
        from foto3d.libs.storage.s3 import S3Store

        bucket, _, prefix = uri[5:].partition("/")
        return S3Store(bucket=bucket, prefix=prefix)
    from foto3d.libs.storage.local import LocalStore

    return LocalStore(Path(uri.removeprefix("file://")))
