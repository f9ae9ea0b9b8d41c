"""Each format: our writer, then our reader, within the format's documented quantisation error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from foto3d.libs import splat as S
from foto3d.libs.splat.model import Splat
from foto3d.libs.splat.synthetic import synthetic_object
from tests.splat.helpers import assert_close, match_order


@pytest.fixture(scope="module")
def scene() -> Splat:
    return synthetic_object(3000, sh_degree=3, seed=7)


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
@pytest.mark.parametrize("normals", [True, False])
def test_ply_is_lossless(tmp_path: Path, scene: Splat, degree: int, normals: bool) -> None:
    src = scene.with_sh_degree(degree)
    S.write(src, tmp_path / "a.ply", normals=normals)
    got = S.read(tmp_path / "a.ply")
    assert got.sh_degree == degree
    assert got.allclose(src, rtol=0, atol=0)


def test_ply_channel_major_sh_order(tmp_path: Path) -> None:
    # f_rest_0..14 must be the 15 red coefficients, then 15 green, then 15 blue.
    s = synthetic_object(4, sh_degree=3, seed=1)
    s.shN[:] = 0
    s.shN[:, :, 0] = np.arange(15)
    s.shN[:, :, 1] = 100 + np.arange(15)
    s.shN[:, :, 2] = 200 + np.arange(15)
    S.write(s, tmp_path / "a.ply")
    from foto3d.libs.splat.formats.plyfile import read_elements

    _, el = read_elements(tmp_path / "a.ply")
    v = el["vertex"]
    assert [float(v[f"f_rest_{i}"][0]) for i in (0, 14, 15, 29, 30, 44)] == [0, 14, 100, 114, 200, 214]


def test_ply_reads_any_property_order_and_types(tmp_path: Path, scene: Splat) -> None:
    n = 50
    s = scene.subset(np.arange(n)).with_sh_degree(1)
    names = ["rot_3", "opacity", "x", "f_dc_2", "scale_1", "y", "f_dc_0", "rot_0", "z", "scale_0"]
    names += ["f_dc_1", "rot_1", "scale_2", "rot_2"] + [f"f_rest_{i}" for i in range(9)]
    flat = s.sh_rest_flat()
    cols = {
        **{f"rot_{i}": s.quats[:, i] for i in range(4)},
        **{f"scale_{i}": s.scales[:, i] for i in range(3)},
        **{f"f_dc_{i}": s.sh0[:, i] for i in range(3)},
        **{f"f_rest_{i}": flat[:, i] for i in range(9)},
        "x": s.means[:, 0],
        "y": s.means[:, 1],
        "z": s.means[:, 2],
        "opacity": s.opacities,
    }
    rec = np.empty(n, dtype=[(nm, "<f8" if nm == "x" else "<f4") for nm in names])
    for nm in names:
        rec[nm] = cols[nm]
    head = "ply\nformat binary_little_endian 1.0\nelement vertex 50\n"
    head += "".join(f"property {'double' if nm == 'x' else 'float'} {nm}\n" for nm in names)
    (tmp_path / "b.ply").write_bytes((head + "end_header\n").encode() + rec.tobytes())
    got = S.read(tmp_path / "b.ply")
    assert got.allclose(s, rtol=0, atol=1e-6)


def test_ply_big_endian_and_ascii(tmp_path: Path, scene: Splat) -> None:
    s = scene.subset(np.arange(20)).with_sh_degree(0)
    S.write(s, tmp_path / "le.ply", normals=False)
    raw = (tmp_path / "le.ply").read_bytes()
    end = raw.index(b"end_header\n") + len(b"end_header\n")
    header = raw[:end].replace(b"binary_little_endian", b"binary_big_endian")
    body = np.frombuffer(raw[end:], "<f4").astype(">f4").tobytes()
    (tmp_path / "be.ply").write_bytes(header + body)
    assert S.read(tmp_path / "be.ply").allclose(s, rtol=0, atol=0)
    rows = np.frombuffer(raw[end:], "<f4").reshape(20, -1)
    text = raw[:end].replace(b"binary_little_endian", b"ascii").decode()
    text += "\n".join(" ".join(repr(float(v)) for v in row) for row in rows) + "\n"
    (tmp_path / "a.ply").write_text(text)
    assert S.read(tmp_path / "a.ply").allclose(s, rtol=0, atol=1e-7)


def test_splat_format(tmp_path: Path, scene: Splat) -> None:
    S.write(scene, tmp_path / "a.splat")
    assert (tmp_path / "a.splat").stat().st_size == 32 * scene.count
    got = S.read(tmp_path / "a.splat")
    assert got.sh_degree == 0
    assert_close(
        scene, got, means=0, scales=1e-5, alpha=1 / 510 + 1e-6, sh0=0.5 / 255 / 0.2820948 + 1e-5,
        quats=0.012, sh_rest=None,
    )  # fmt: skip


@pytest.mark.parametrize("version", [2, 3])
def test_spz_format(tmp_path: Path, scene: Splat, version: int) -> None:
    S.write(scene, tmp_path / "a.spz", version=version)
    raw = __import__("gzip").decompress((tmp_path / "a.spz").read_bytes())
    assert raw[:8] == bytes([0x4E, 0x47, 0x53, 0x50, version, 0, 0, 0])
    got = S.read(tmp_path / "a.spz")
    assert got.sh_degree == 3
    assert_close(
        scene, got, means=2.0**-13 + 1e-6, scales=1 / 32 + 1e-6, alpha=1 / 510 + 1e-6,
        sh0=0.5 / (0.15 * 255) + 1e-5, quats=0.0025 if version == 3 else 0.12,
        sh_rest=8.5 / 128 + 1e-6,
    )  # fmt: skip
    # degree-1 coefficients use finer buckets (5 bits) than degrees 2-3 (4 bits)
    assert np.abs(got.shN[:, :3] - scene.shN[:, :3]).max() <= 4.5 / 128 + 1e-6


def test_spz_keeps_large_scenes_in_range(tmp_path: Path, scene: Splat) -> None:
    big = scene.copy()
    big.means *= 5000.0  # beyond 24-bit range at 12 fractional bits: fewer bits are used
    S.write(big, tmp_path / "big.spz")
    got = S.read(tmp_path / "big.spz")
    assert np.abs(got.means - big.means).max() < 0.25


@pytest.mark.parametrize("sort", [True, False])
def test_compressed_ply_format(tmp_path: Path, scene: Splat, sort: bool) -> None:
    S.write(scene, tmp_path / "a.compressed.ply", sort=sort)
    size = (tmp_path / "a.compressed.ply").stat().st_size
    assert size < scene.count * (16 + 45) + 12 * 18 * 4 + 4096
    assert S.detect_format(tmp_path / "a.compressed.ply") == "compressed-ply"
    got = S.read(tmp_path / "a.compressed.ply")
    if sort:
        got = match_order(scene, got)
    extent = float(np.ptp(scene.means, axis=0).max())
    assert_close(
        scene, got, means=extent / 2046 if not sort else 0.01, scales=0.02, alpha=1 / 255,
        sh0=0.03, quats=0.0025, sh_rest=8 / 256 / 2 + 1e-6,
    )  # fmt: skip


def test_compressed_ply_is_sniffed_under_plain_ply_name(tmp_path: Path, scene: Splat) -> None:
    S.write(scene, tmp_path / "a.ply", fmt="compressed-ply")
    assert S.detect_format(tmp_path / "a.ply") == "compressed-ply"
    assert S.read(tmp_path / "a.ply").count == scene.count


def test_sh_degree_changes(scene: Splat) -> None:
    low = scene.with_sh_degree(1)
    assert low.sh_degree == 1 and np.array_equal(low.shN, scene.shN[:, :3])
    up = low.with_sh_degree(3)
    assert up.sh_degree == 3 and not up.shN[:, 3:].any()
    with pytest.raises(ValueError):
        scene.with_sh_degree(4)


def test_model_helpers(scene: Splat) -> None:
    sub = scene.subset(scene.activated_opacities() > 0.5)
    assert 0 < sub.count < scene.count
    assert scene.subset([2, 0]).means.tolist() == scene.means[[2, 0]].tolist()
    q = scene.copy()
    q.quats[0] = 0
    assert np.allclose(q.normalized().quats[0], [1, 0, 0, 0])
    assert np.allclose(np.linalg.norm(q.normalized().quats, axis=1), 1, atol=1e-6)
    assert Splat.concat([scene, scene]).count == 2 * scene.count


def test_synthetic_object_is_deterministic_and_realistic() -> None:
    a = synthetic_object(20_000, seed=3)
    b = synthetic_object(20_000, seed=3)
    assert a.allclose(b, rtol=0, atol=0)
    assert not a.allclose(synthetic_object(20_000, seed=4))
    alpha = a.activated_opacities()
    assert 0.15 < float((alpha < 0.2).mean()) < 0.5  # many faint gaussians
    far = np.linalg.norm(a.means - [0, 0, 0.5], axis=1) > 1.15
    assert 0.01 < float(far.mean()) < 0.06  # a few percent of floaters
    lin = a.activated_scales()
    assert float(np.median(lin.min(axis=1) / lin.max(axis=1))) < 0.3  # flat, surface-aligned
