"""A job artifact's bytes on this host, wherever the trainer stored them.

Trainers record each result as a ``file://`` or ``s3://bucket/key`` URI with its SHA-256. Whoever
needs the bytes (the publisher to publish them, the dashboard to show them to a reviewer) gets
a local path that is checked against that hash, so a file changed or cut short since training is
refused rather than shown or published.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from foto3d.libs.storage.base import BlobStore, StorageError, open_store, sha256_file


async def fetch_artifact(
    uri: str,
    sha256: str,
    dest_dir: Path,
    stores: Callable[[str], BlobStore] = open_store,
) -> Path:
    """A local path holding ``uri``'s bytes: the file itself for ``file://``, else a download into
    ``dest_dir`` through ``stores("s3://bucket")``. Raises StorageError, saying what is wrong."""
    if uri.startswith("s3://"):
        bucket, _, key = uri[5:].partition("/")
        path = dest_dir / Path(key).name
        try:
            await stores(f"s3://{bucket}").get_file(key, path)
        except StorageError as exc:
            raise StorageError(f"cannot fetch artifact {uri}: {exc}") from exc
    else:
        path = Path(uri.removeprefix("file://"))
        if not path.is_file():
            raise StorageError(f"artifact {uri} is missing (was it cleaned up?)")
    if sha256:
        actual = await asyncio.to_thread(sha256_file, path)
        if actual != sha256:
            raise StorageError(
                f"artifact {uri} changed since training: sha256 {actual}, the job recorded {sha256}"
            )
    return path
