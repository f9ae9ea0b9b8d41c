"""The trainer's reduction step: formats from the registry, up axes recorded per file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from foto3d.libs import splat as S
from foto3d.libs.splat.coords import reorient
from foto3d.libs.splat.formats.registry import get as get_format
from foto3d.libs.splat.synthetic import synthetic_object
from foto3d.proto.jobs import TrainOptions
from foto3d.services.trainer.reduce import ply_vertex_count, reduce_export


def test_export_is_reduced_and_every_format_records_its_axis(tmp_path: Path) -> None:
    scene = synthetic_object(2000, sh_degree=1, seed=8)
    src = tmp_path / "splat.ply"
    S.write(scene, src, up="z", normals=True)  # as ns-export writes it
    opts = TrainOptions(reduce_keep=0.5, sh_degree=1, formats=["ply", "spz", "compressed-ply"])
    out = reduce_export(src, tmp_path / "final", opts)
    assert out.reduced and out.gaussians_in == 2000 and out.gaussians_out == 1000
    assert {k: p.name for k, p in out.files.items()} == {
        "ply": "model.ply",
        "spz": "model.spz",
        "compressed-ply": "model.compressed.ply",
    }
    # As stored: .spz is kept in Niantic's RUB frame, +Y up, though it decodes -Y up like the others.
    assert out.up == {"ply": "z", "spz": "y", "compressed-ply": "-y"}
    for fmt, path in out.files.items():
        assert get_format(fmt).decoded_up(out.up[fmt]) == S.up_axis(path)[0]
    assert S.up_axis(out.files["ply"]) == ("z", True)
    assert ply_vertex_count(out.files["ply"]) == 1000
    ply, spz = S.read(out.files["ply"]), S.read(out.files["spz"])
    assert np.abs(reorient(ply, "z", "-y").means - spz.means).max() < 1e-3


def test_no_reduction_keeps_every_gaussian(tmp_path: Path) -> None:
    scene = synthetic_object(300, sh_degree=0, seed=9)
    src = tmp_path / "splat.ply"
    S.write(scene, src)  # no axis recorded: nerfstudio's +z is assumed
    out = reduce_export(src, tmp_path / "final", TrainOptions(reduce=False, formats=["ply"]))
    assert not out.reduced and out.gaussians_out == 300 and out.up == {"ply": "z"}
