"""Broken files give one clear error; with repair=True they are fixed with a warning."""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import numpy as np
import pytest

from foto3d.libs import splat as S
from foto3d.libs.splat.model import Splat
from foto3d.libs.splat.synthetic import synthetic_object


@pytest.fixture
def scene() -> Splat:
    return synthetic_object(300, sh_degree=1, seed=5)


def _error(path: Path, **kw: bool) -> str:
    with pytest.raises(S.SplatFormatError) as info:
        S.read(path, **kw)  # type: ignore[arg-type]
    return str(info.value)


@pytest.mark.parametrize("ext", ["ply", "compressed.ply", "splat", "spz"])
def test_truncated_files(tmp_path: Path, scene: Splat, ext: str) -> None:
    p = tmp_path / f"a.{ext}"
    S.write(scene, p)
    p.write_bytes(p.read_bytes()[:-37])
    assert "truncated" in _error(p) or "damaged" in _error(p)


def test_spz_count_mismatch(tmp_path: Path, scene: Splat) -> None:
    p = tmp_path / "a.spz"
    S.write(scene, p)
    raw = bytearray(gzip.decompress(p.read_bytes()))
    raw[8:12] = (scene.count + 10).to_bytes(4, "little")
    p.write_bytes(gzip.compress(bytes(raw)))
    assert "truncated" in _error(p) and str(scene.count + 10) in _error(p)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"ply\nformat binary_little_endian 1.0\nelement vertex 3\nproperty float x\n", "end_header"),
        (b"ply\nformat binary_middle_endian 1.0\nend_header\n", "unknown PLY format"),
        (b"ply\nformat ascii 1.0\nelement face 1\nproperty list uchar int v\nend_header\n", "list"),
        (b"ply\nformat binary_little_endian 1.0\nelement vertex 1\nproperty float x\nend_header\n" + bytes(4), "lacks"),
        (b"\x1f\x8b\x08\x00garbage", "gzip"),
        (b"NGSP\x09\x00\x00\x00" + bytes(8), "version 9"),
    ],
)  # fmt: skip
def test_bad_headers(tmp_path: Path, content: bytes, message: str) -> None:
    p = tmp_path / ("a.spz" if content[:1] in (b"\x1f", b"N") else "a.ply")
    p.write_bytes(content)
    assert message in _error(p)


def test_unknown_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "a.xyz").write_bytes(b"hello")
    assert "unknown splat format" in _error(tmp_path / "a.xyz")
    assert "no such file" in _error(tmp_path / "none.ply")
    (tmp_path / "e.ply").write_bytes(b"")
    assert "empty" in _error(tmp_path / "e.ply")
    (tmp_path / "b.splat").write_bytes(bytes(33))
    assert "32-byte" in _error(tmp_path / "b.splat")


def test_nan_rows_and_zero_quats(tmp_path: Path, scene: Splat, caplog: pytest.LogCaptureFixture) -> None:
    bad = scene.copy()
    bad.means[3, 1] = np.nan
    bad.opacities[7] = np.nan
    bad.quats[10] = 0.0
    bad.scales[12] = 80.0
    p = tmp_path / "bad.ply"
    from foto3d.libs.splat.formats import ply

    ply.write(bad, p)  # the format writer itself does not judge values
    msg = _error(p)
    assert "2 gaussian(s) with NaN/Inf" in msg and "zero-length rotation" in msg and "--repair" in msg
    with caplog.at_level(logging.WARNING):
        fixed = S.read(p, repair=True)
    assert fixed.count == scene.count - 2
    assert not fixed.nonfinite_rows().any() and not fixed.zero_quat_rows().any()
    assert fixed.scales.max() <= 12.0
    text = caplog.text
    assert "dropped 2" in text and "identity" in text and "clamped" in text


def test_infinite_opacity_logits_are_clamped_and_said_once(
    tmp_path: Path, scene: Splat, caplog: pytest.LogCaptureFixture
) -> None:
    # PlayCanvas' decoder writes alpha 255 as +inf (and 0 as -inf): mainstream files, not damage.
    odd = scene.copy()
    odd.opacities[[1, 2, 3]] = np.inf
    odd.opacities[4] = -np.inf
    from foto3d.libs.splat.formats import ply

    ply.write(odd, tmp_path / "inf.ply")
    with caplog.at_level(logging.WARNING):
        got = S.read(tmp_path / "inf.ply")
    assert got.count == scene.count and np.isfinite(got.opacities).all()
    assert got.activated_opacities()[1] > 0.999 and got.activated_opacities()[4] < 0.001
    warnings = [r.message for r in caplog.records if "infinite opacity" in r.getMessage()]
    assert len(caplog.records) == 1 and "clamped 4 infinite opacity" in caplog.records[0].getMessage()
    assert len(warnings) == 1


def test_writer_refuses_nan(tmp_path: Path, scene: Splat) -> None:
    bad = scene.copy()
    bad.sh0[0, 0] = np.nan
    with pytest.raises(S.SplatFormatError, match="NaN"):
        S.write(bad, tmp_path / "a.spz")
    assert not list(tmp_path.iterdir())  # nothing half-written
