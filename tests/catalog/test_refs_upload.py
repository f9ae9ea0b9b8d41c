"""Reference images kept only on a disk from before the ``catalog-refs`` bucket: the catalog
that takes the lease uploads them once, and any instance then reads them from the bucket."""

from __future__ import annotations

import os
from pathlib import Path

from foto3d.libs.bus.connection import Bus
from foto3d.libs.config import Settings
from foto3d.services.catalog.refs import ReferenceImages
from testkit.running import running_services
from testkit.waiting import eventually

OLD = {"acme-vase-1.png": b"\x89PNG" + os.urandom(5000), "acme-lamp-1.jpg": b"\xff\xd8" + os.urandom(7000)}


async def test_local_reference_images_are_uploaded_once_by_the_leader(
    settings: Settings, bus: Bus, tmp_path: Path
) -> None:
    refs = settings.data_dir / "catalog" / "refs"
    refs.mkdir(parents=True)
    for name, data in OLD.items():
        (refs / name).write_bytes(data)
    async with running_services(settings, ["catalog"], http=False):
        elsewhere = ReferenceImages(bus, tmp_path / "elsewhere")
        await eventually(lambda: _all_in(elsewhere), what="the old files in the bucket", timeout=60)
        # Idempotent: a second pass (the next takeover) uploads nothing.
        assert await ReferenceImages(bus, refs).upload_local() == 0
    for name, data in OLD.items():
        path = await elsewhere.path(Path(name).stem)
        assert path is not None and path.name == name and path.read_bytes() == data
    assert await elsewhere.path("acme-chair-1") is None


async def _all_in(refs: ReferenceImages) -> bool:
    return await refs.names() == set(OLD)
