"""Capture notes' photos in the ``catalog-notes`` object store, with a local cache file each.

As the reference images (``refs.py``): a photo is put into the replicated bucket before the
note's event that names it is published, every instance serves it through the bucket, a
rebuild restores ``<data>/catalog/notes/`` from it, and the leader uploads once the photos
that were only on its disk from before the bucket.
"""

from __future__ import annotations

from pathlib import Path

from foto3d.libs.bus.bucket_files import BucketFiles
from foto3d.libs.bus.connection import Bus
from foto3d.proto.permissions import CATALOG_NOTES_BUCKET
from foto3d.services.catalog.refs import IMAGE_SUFFIXES


def photo_name(note_id: str, index: int, suffix: str) -> str:
    return f"{note_id}-{index}{suffix}"


class NotePhotos(BucketFiles):
    """One file per photo, named ``<note_id>-<index><suffix>``."""

    def __init__(self, bus: Bus, folder: Path) -> None:
        super().__init__(bus, CATALOG_NOTES_BUCKET, folder, IMAGE_SUFFIXES)

    async def path(self, note_id: str, index: int) -> Path | None:
        """The cache file of a note's photo, fetched from the bucket when missing here."""
        return await self.first(photo_name(note_id, index, suffix) for suffix in IMAGE_SUFFIXES)
