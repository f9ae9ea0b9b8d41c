"""`foto3d splat info|convert`: output, conventions, refusals and readable errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from foto3d.cli.main import main
from foto3d.libs import splat as S
from foto3d.libs.splat.coords import reorient
from foto3d.libs.splat.model import Splat
from foto3d.libs.splat.synthetic import synthetic_object


@pytest.fixture
def ply(tmp_path: Path) -> tuple[Path, Splat]:
    s = synthetic_object(1000, sh_degree=3, seed=2)
    p = tmp_path / "scene.ply"
    S.write(s, p, up="z")  # as nerfstudio exports it: +z up, recorded in the header
    return p, s


def test_info_json(ply: tuple[Path, Splat], capsys: pytest.CaptureFixture[str]) -> None:
    path, s = ply
    assert main(["splat", "info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["count"] == 1000 and info["sh_degree"] == 3 and info["format"] == "ply"
    assert info["bytes_per_gaussian"] == pytest.approx(path.stat().st_size / 1000)
    assert info["bounds"]["max"] == pytest.approx(s.means.max(axis=0).tolist())
    assert info["robust_bounds"]["min"] == pytest.approx(np.percentile(s.means, 1, axis=0).tolist())
    assert 0 < info["opacity"]["median"] < 1
    assert info["problems"] == []


def test_info_text_and_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    s = synthetic_object(100, sh_degree=0)
    s.means[0] = np.nan
    from foto3d.libs.splat.formats import ply

    ply.write(s, tmp_path / "bad.ply")
    assert main(["splat", "info", str(tmp_path / "bad.ply")]) == 0
    out = capsys.readouterr().out
    assert "gaussians     100" in out and "robust bounds" in out and "NaN/Inf" in out


def test_convert_between_formats_with_up_axes(ply: tuple[Path, Splat], tmp_path: Path) -> None:
    path, s = ply
    assert S.up_axis(path) == ("z", True)
    assert main(["splat", "convert", str(path), "-o", str(tmp_path / "a.spz")]) == 0
    # .ply recording +z up to .spz: turned so +z becomes -y (the 3DGS frame the codec expects)
    got = S.read(tmp_path / "a.spz")
    assert np.abs(got.means - reorient(s, "z", "-y").means).max() < 1e-3
    # .spz to .ply: a .ply records its axis, so nothing is turned and the header says -y
    assert main(["splat", "convert", str(tmp_path / "a.spz"), "-o", str(tmp_path / "b.ply")]) == 0
    assert S.up_axis(tmp_path / "b.ply") == ("-y", True)
    assert np.abs(S.read(tmp_path / "b.ply").means - got.means).max() < 1e-6
    # ... and asked for +z, it is turned back to the source
    args = ["splat", "convert", str(tmp_path / "a.spz"), "-o", str(tmp_path / "z.ply"), "--target-up", "z"]
    assert main(args) == 0
    assert np.abs(S.read(tmp_path / "z.ply").means - s.means).max() < 1e-3
    # explicit axes: no turn when both are the same
    out = tmp_path / "c.compressed.ply"
    assert main(["splat", "convert", str(path), "-o", str(out), "--up", "-y", "--sh-degree", "1"]) == 0
    c = S.read(out)
    assert c.sh_degree == 1
    assert np.allclose(np.sort(c.means[:, 2]), np.sort(s.means[:, 2]), atol=0.02)


def test_ply_without_up_comment_is_taken_as_3dgs_and_said(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s = synthetic_object(200, sh_degree=1, seed=3)
    S.write(s, tmp_path / "plain.ply")
    assert S.up_axis(tmp_path / "plain.ply") == ("-y", False)
    assert main(["splat", "convert", str(tmp_path / "plain.ply"), "-o", str(tmp_path / "p.spz")]) == 0
    assert "does not record its up axis; assuming -y" in capsys.readouterr().err
    # -y is what .spz expects in memory: no turn
    assert np.abs(S.read(tmp_path / "p.spz").means - s.means).max() < 1e-3


def test_convert_refuses_overwrite_and_reports_errors(
    ply: tuple[Path, Splat], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = ply
    out = tmp_path / "a.splat"
    out.write_bytes(b"keep me")
    assert main(["splat", "convert", str(path), "-o", str(out)]) == 2
    assert "--force" in capsys.readouterr().err and out.read_bytes() == b"keep me"
    assert main(["splat", "convert", str(path), "-o", str(out), "--force"]) == 0
    assert out.stat().st_size == 32 * 1000
    assert main(["splat", "convert", str(path), "-o", str(tmp_path / "a.obj")]) == 2
    assert "output format" in capsys.readouterr().err
    truncated = tmp_path / "t.ply"
    truncated.write_bytes(path.read_bytes()[:5000])
    assert main(["splat", "convert", str(truncated), "-o", str(tmp_path / "t.spz")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("foto3d: error:") and "truncated" in err and "Traceback" not in err
    assert not (tmp_path / "t.spz").exists()
    assert main(["splat", "info", str(tmp_path / "missing.ply")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_convert_repair(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    s = synthetic_object(100, sh_degree=0)
    s.quats[5] = 0
    from foto3d.libs.splat.formats import ply

    ply.write(s, tmp_path / "bad.ply")
    assert main(["splat", "convert", str(tmp_path / "bad.ply"), "-o", str(tmp_path / "o.ply")]) == 2
    assert "--repair" in capsys.readouterr().err
    args = ["splat", "convert", str(tmp_path / "bad.ply"), "-o", str(tmp_path / "o.ply"), "--repair"]
    assert main(args) == 0
    assert np.allclose(S.read(tmp_path / "o.ply").quats[5], [1, 0, 0, 0])
