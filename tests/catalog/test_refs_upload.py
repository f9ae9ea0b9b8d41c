"""Images kept only on a disk from before their bucket (reference images before
``catalog-refs``, notes' photos before ``catalog-notes``): the catalog that takes the lease
uploads them once, and any instance then reads them from the bucket."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from foto3d.libs.bus.bucket_files import BucketFiles
from foto3d.libs.bus.connection import Bus
from foto3d.libs.config import Settings
from foto3d.services.catalog.note_photos import NotePhotos
from foto3d.services.catalog.refs import ReferenceImages
from testkit.running import running_services
from testkit.waiting import eventually

PNG, JPEG = b"\x89PNG" + os.urandom(5000), b"\xff\xd8" + os.urandom(7000)
REFS = {"acme-vase-1.png": PNG, "acme-lamp-1.jpg": JPEG}
NOTES = {f"note-{'a' * 32}-0.png": PNG, f"note-{'b' * 32}-1.jpg": JPEG}


@pytest.mark.parametrize(
    ("folder", "files", "old"),
    [("refs", ReferenceImages, REFS), ("notes", NotePhotos, NOTES)],
    ids=["reference-images", "note-photos"],
)
async def test_local_images_are_uploaded_once_by_the_leader(
    settings: Settings,
    bus: Bus,
    tmp_path: Path,
    folder: str,
    files: Callable[[Bus, Path], BucketFiles],
    old: dict[str, bytes],
) -> None:
    local = settings.data_dir / "catalog" / folder
    local.mkdir(parents=True)
    for name, data in old.items():
        (local / name).write_bytes(data)
    async with running_services(settings, ["catalog"], http=False):
        elsewhere = files(bus, tmp_path / "elsewhere")

        async def all_in() -> bool:
            return await elsewhere.names() == set(old)

        await eventually(all_in, what="the old files in the bucket", timeout=60)
        # Idempotent: a second pass (the next takeover) uploads nothing.
        assert await files(bus, local).upload_local() == 0
    for name, data in old.items():
        path = await elsewhere.first([name])
        assert path is not None and path.name == name and path.read_bytes() == data
    assert await elsewhere.first(["acme-chair-1.png", f"note-{'c' * 32}-0.png"]) is None
