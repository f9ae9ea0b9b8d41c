"""The format registry: one declaration per format, and everything else reads it."""

from __future__ import annotations

import gzip
import struct
import typing
from pathlib import Path

import msgspec
import numpy as np
import pytest

from foto3d.libs import splat as S
from foto3d.libs.splat.formats import registry
from foto3d.libs.splat.synthetic import synthetic_object
from foto3d.proto.jobs import SplatFormatName, TrainOptions


def test_contract_names_exactly_the_registered_formats() -> None:
    assert set(typing.get_args(SplatFormatName)) == set(registry.FORMATS) == set(registry.NAMES)


def test_contract_refuses_a_format_it_does_not_know() -> None:
    body = b'{"formats": ["ply", "compressed.ply"]}'
    with pytest.raises(msgspec.ValidationError, match="formats"):
        msgspec.json.decode(body, type=TrainOptions)
    ok = msgspec.json.decode(b'{"formats": ["ply", "compressed-ply", "sog"]}', type=TrainOptions)
    assert ok.formats == ["ply", "compressed-ply", "sog"]


@pytest.mark.parametrize("name", ["ply", "compressed-ply", "splat", "spz"])
def test_every_format_round_trips_by_its_declared_suffix_and_is_sniffed(tmp_path: Path, name: str) -> None:
    spec = registry.get(name)
    scene = synthetic_object(300, sh_degree=1, seed=4)
    path = tmp_path / f"x{spec.suffixes[0]}"
    S.write(scene, path)
    assert S.format_from_name(path) == name
    assert S.detect_format(path) == name
    assert S.read(path).count == scene.count
    assert spec.content_type and spec.description
    # A misleading name does not fool sniffing where the format has a magic.
    if spec.sniff is not None:
        renamed = tmp_path / "misnamed.splat"
        path.rename(renamed)
        assert S.detect_format(renamed) == name


def test_suffix_lookup_prefers_the_most_specific() -> None:
    assert S.format_from_name("a/b.compressed.ply") == "compressed-ply"
    assert S.format_from_name("B.PLY") == "ply"
    assert S.format_from_name("b.obj") is None
    with pytest.raises(S.SplatFormatError, match="choose from"):
        registry.get("compressed.ply")


def test_ply_records_and_reads_its_up_axis(tmp_path: Path) -> None:
    scene = synthetic_object(50, sh_degree=0)
    for axis in ("z", "-y", "x"):
        S.write(scene, tmp_path / "a.ply", up=axis)
        assert S.up_axis(tmp_path / "a.ply") == (axis, True)
    # the vector form some exporters write
    raw = (tmp_path / "a.ply").read_bytes().replace(b"Vertical Axis: x", b"Vertical axis: 0 -1 0")
    (tmp_path / "b.ply").write_bytes(raw)
    assert S.up_axis(tmp_path / "b.ply") == ("-y", True)
    S.write(scene, tmp_path / "c.ply")
    assert S.up_axis(tmp_path / "c.ply") == ("-y", False)
    assert S.up_axis(tmp_path / "c.ply", "spz") == ("-y", True)


def test_ply_output_has_no_normals(tmp_path: Path) -> None:
    scene = synthetic_object(100, sh_degree=0)
    S.write(scene, tmp_path / "a.ply")
    header = (tmp_path / "a.ply").read_bytes().split(b"end_header")[0]
    assert b"nx" not in header
    assert (tmp_path / "a.ply").stat().st_size == len(header) + len(b"end_header\n") + 100 * 14 * 4


def test_stored_up_is_the_frame_of_the_bytes(tmp_path: Path) -> None:
    """What the pipeline records per file is the up axis as stored: for .spz (RUB on disk, decoded
    into the PLY frame) the codec's own turn maps one onto the other; other formats store as decoded."""
    for name in registry.NAMES:
        fmt = registry.get(name)
        for axis in ("x", "-x", "y", "-y", "z", "-z"):
            assert fmt.decoded_up(fmt.stored_up(axis)) == axis
            if name != "spz":
                assert fmt.stored_up(axis) == axis
    spz = registry.get("spz")
    assert [spz.stored_up(a) for a in ("x", "-x", "y", "-y", "z", "-z")] == ["x", "-x", "-y", "y", "-z", "z"]
    # The bytes: a splat stretched along decoded -y is stretched along +y in the raw positions.
    scene = synthetic_object(200, sh_degree=0, seed=4)
    scene.means[:, 1] = -np.abs(scene.means[:, 1]) - 1.0
    S.write(scene, tmp_path / "a.spz")
    data = gzip.decompress((tmp_path / "a.spz").read_bytes())
    count, frac_bits = struct.unpack_from("<I", data, 8)[0], data[13]
    raw = np.frombuffer(data[16 : 16 + 9 * count], np.uint8).reshape(-1, 3).astype(np.int32)
    fixed = raw[:, 0] | (raw[:, 1] << 8) | (raw[:, 2] << 16)
    stored = (np.where(fixed & 0x800000, fixed - (1 << 24), fixed) / (1 << frac_bits)).reshape(count, 3)
    assert (stored[:, 1] > 0.9).all()
