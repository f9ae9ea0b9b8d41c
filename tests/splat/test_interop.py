"""Round trips through an independent implementation: PlayCanvas' splat-transform (Node).

Our files are decoded by splat-transform (to a lossless .ply we then read), and files it writes
are decoded by us. splat-transform keeps .spz data in the PLY frame (no RUB conversion, see
docs/splat.md), so against our .spz codec the data differs by a half turn about x.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from foto3d.libs import splat as S
from foto3d.libs.splat import splat_transform
from foto3d.libs.splat.coords import rotate
from foto3d.libs.splat.model import Splat
from foto3d.libs.splat.synthetic import synthetic_object
from tests.splat.helpers import assert_close, match_order

pytestmark = pytest.mark.skipif(
    not splat_transform.available(),
    reason="node / @playcanvas/splat-transform not installed (run `npm install` in tools/node)",
)
FLIP_YZ = np.diag([1.0, -1.0, -1.0])


def st(*args: str) -> None:
    cmd = splat_transform.command()
    assert cmd is not None
    subprocess.run([*cmd, "-q", "-w", *args], check=True, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def scene() -> Splat:
    return synthetic_object(2000, sh_degree=3, seed=11)


@pytest.mark.parametrize("normals", [True, False])
def test_our_ply_read_by_splat_transform(tmp_path: Path, scene: Splat, normals: bool) -> None:
    S.write(scene, tmp_path / "a.ply", normals=normals)
    st(str(tmp_path / "a.ply"), str(tmp_path / "b.ply"))
    got = S.read(tmp_path / "b.ply")
    assert got.allclose(scene, rtol=0, atol=1e-6)


def test_our_splat_read_by_splat_transform(tmp_path: Path, scene: Splat) -> None:
    S.write(scene, tmp_path / "a.splat")
    st(str(tmp_path / "a.splat"), str(tmp_path / "b.ply"))
    got = S.read(tmp_path / "b.ply")
    assert_close(
        scene, got, means=0, scales=1e-5, alpha=1 / 510 + 1e-5, sh0=0.5 / 255 / 0.2820948 + 1e-4,
        quats=0.012, sh_rest=None,
    )  # fmt: skip


@pytest.mark.parametrize(("version", "level"), [(2, 6), (3, 6), (3, 12)])
def test_our_spz_read_by_splat_transform(tmp_path: Path, scene: Splat, version: int, level: int) -> None:
    S.write(scene, tmp_path / "a.spz", version=version, compresslevel=level)
    st(str(tmp_path / "a.spz"), str(tmp_path / "b.ply"))
    got = rotate(S.read(tmp_path / "b.ply"), FLIP_YZ)  # it does not undo the RUB frame
    assert_close(
        scene, got, means=2.0**-13 + 1e-6, scales=1 / 32 + 1e-6, alpha=1 / 510 + 1e-5,
        sh0=0.5 / (0.15 * 255) + 1e-5, quats=0.0025 if version == 3 else 0.12, sh_rest=8.5 / 128 + 1e-5,
    )  # fmt: skip


def test_our_compressed_ply_read_by_splat_transform(tmp_path: Path, scene: Splat) -> None:
    S.write(scene, tmp_path / "a.compressed.ply")
    st(str(tmp_path / "a.compressed.ply"), str(tmp_path / "b.ply"))
    got = match_order(scene, S.read(tmp_path / "b.ply"))
    assert_close(
        scene, got, means=0.01, scales=0.02, alpha=1 / 255, sh0=0.03, quats=0.0025, sh_rest=1 / 64 + 1e-5
    )


@pytest.mark.parametrize("spz_version", ["3", "4"])
def test_splat_transform_spz_read_by_us(tmp_path: Path, scene: Splat, spz_version: str) -> None:
    S.write(scene, tmp_path / "a.ply")
    st("--spz-version", spz_version, str(tmp_path / "a.ply"), str(tmp_path / "b.spz"))
    got = rotate(S.read(tmp_path / "b.spz"), FLIP_YZ)
    assert_close(
        scene, got, means=2.0**-13 + 1e-6, scales=1 / 32 + 1e-6, alpha=1 / 510 + 1e-5,
        sh0=0.5 / (0.15 * 255) + 1e-5, quats=0.0025, sh_rest=8.5 / 128 + 1e-5,
    )  # fmt: skip


def test_splat_transform_compressed_ply_read_by_us(tmp_path: Path, scene: Splat) -> None:
    S.write(scene, tmp_path / "a.ply")
    st(str(tmp_path / "a.ply"), str(tmp_path / "b.compressed.ply"))
    got = match_order(scene, S.read(tmp_path / "b.compressed.ply"))
    assert_close(
        scene, got, means=0.01, scales=0.02, alpha=1 / 255, sh0=0.03, quats=0.0025, sh_rest=1 / 64 + 1e-5
    )


def test_sog_round_trip(tmp_path: Path, scene: Splat) -> None:
    # SH-free so splat-transform's CPU k-means (minutes for SH palettes) is not needed here.
    # SOG codes colours with a palette, so we bound typical (median) error, not the worst case.
    src = scene.with_sh_degree(0)
    S.write(src, tmp_path / "a.sog")
    got = S.read(tmp_path / "a.sog")
    assert got.count == src.count and got.sh_degree == 0
    d = ((got.means[:, None, :] - src.means[None, :, :]) ** 2).sum(axis=2)
    nearest = d.argmin(axis=1)
    extent = float(np.ptp(src.means, axis=0).max())
    assert float(np.sqrt(d.min(axis=1)).max()) < extent * 2e-3
    assert float(np.median(np.abs(got.sh0 - src.sh0[nearest]))) < 0.05
    alpha_err = np.abs(got.activated_opacities() - src.activated_opacities()[nearest])
    assert float(np.median(alpha_err)) < 0.01
