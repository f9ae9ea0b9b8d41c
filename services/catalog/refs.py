"""Reference images in the ``catalog-refs`` object store, with a local cache file each.

The bucket is replicated like the catalog's streams, so an image outlives the disk of the
instance that took it: the leader writes it there before publishing the event that names it,
every instance (a standby serving a page) reads through it, and a rebuild restores the files
from it. The files under ``<data>/catalog/refs/`` are only a cache (and, from before the
bucket, the originals: the leader uploads any the bucket lacks once at start). The bucket
and cache mechanics are ``libs/bus/bucket_files.py``, shared with the capture notes' photos.
"""

from __future__ import annotations

from pathlib import Path

from foto3d.libs.bus.bucket_files import BucketFiles
from foto3d.libs.bus.connection import Bus
from foto3d.proto.permissions import CATALOG_REFS_BUCKET

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


class ReferenceImages(BucketFiles):
    """One file per catalog object, named ``<object_id><suffix>``."""

    def __init__(self, bus: Bus, folder: Path) -> None:
        super().__init__(bus, CATALOG_REFS_BUCKET, folder, IMAGE_SUFFIXES)

    async def path(self, object_id: str) -> Path | None:
        """The cache file of ``object_id``'s image, fetched from the bucket when missing here."""
        return await self.first(f"{object_id}{suffix}" for suffix in IMAGE_SUFFIXES)
