"""Fixtures for viewer tests: a generated splat in several formats and the test site."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from foto3d.libs.splat import io as splat_io
from foto3d.libs.splat.coords import reorient
from foto3d.libs.splat.formats.spz import SMALLEST_GZIP_LEVEL
from foto3d.libs.splat.synthetic import synthetic_object
from foto3d.libs.viewer import assets
from tests.viewer.site import Site, serve_site

# synthetic_object(20_000) lays out body, box and disc first and its floaters last (_PARTS).
FLOATERS_FROM = 11_000 + 3_400 + 5_000


@pytest.fixture(scope="session")
def splat_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 20k-gaussian synthetic product (Z up, as nerfstudio exports it) as .ply (with the
    trainer's ``Vertical Axis: z`` header comment) and as .spz (our codec, Niantic's RUB frame);
    ``clean.*`` are the same without the 3 % of far floaters. ``clean-3dgs.ply`` is ``clean``
    as third-party tools write it: -Y up and no axis comment (3DGS/INRIA, PlayCanvas)."""
    try:
        assets.load_bundle()
    except assets.ViewerBundleMissing as exc:
        pytest.fail(str(exc))
    out = tmp_path_factory.mktemp("splats")
    splat = synthetic_object(20_000, sh_degree=1, seed=3)
    clean = splat.subset(np.arange(FLOATERS_FROM))
    for name, s in (("object", splat), ("clean", clean)):
        splat_io.write(s, out / f"{name}.ply", up="z")
        # at the level the trainer and `splat reduce` deliver (libdeflate's), so Spark reads that
        splat_io.write(reorient(s, "z", "-y"), out / f"{name}.spz", compresslevel=SMALLEST_GZIP_LEVEL)
    splat_io.write(reorient(clean, "z", "-y"), out / "clean-3dgs.ply")
    (out / "broken.spz").write_bytes(b"\x1f\x8b" + bytes(range(256)) * 8)  # gzip magic, then garbage
    return out


@pytest.fixture
async def site(splat_files: Path) -> AsyncIterator[Site]:
    async with serve_site(splat_files) as s:
        yield s
