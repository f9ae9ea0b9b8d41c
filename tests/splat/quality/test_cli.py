"""`foto3d splat reduce` / `compare` as a user runs them: output, JSON, readable errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from foto3d.cli.main import main
from foto3d.libs.splat import read, write
from foto3d.libs.splat.synthetic import synthetic_object


@pytest.fixture(scope="module")
def ply(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "object.ply"
    write(synthetic_object(6000, seed=2), path, up="z")  # as nerfstudio exports: +z, recorded
    return path


def test_reduce_prints_sizes_counts_and_reasons(
    ply: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "small.spz"
    rc = main(
        ["splat", "reduce", str(ply), "-o", str(out), "--keep", "40%", "--sh-degree", "1",
         "--min-opacity", "0.02", "--remove-floaters", "--strategy", "prune", "--importance", "area",
         "--refit-steps", "0"]
    )  # fmt: skip
    text = capsys.readouterr().out
    assert rc == 0, text
    assert f"{ply.stat().st_size:,} bytes, 6,000 gaussians, SH degree 3" in text
    assert f"{out.stat().st_size:,} bytes, 2,400 gaussians, SH degree 1" in text
    assert "x smaller" in text and "low importance" in text and "low opacity" in text
    back = read(out)
    assert back.count == 2400 and back.sh_degree == 1


def test_reduce_json_with_quality(ply: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torch", reason="torch (the 'quality' extra) is not installed")
    out = tmp_path / "half.ply"
    rc = main(
        [
            "splat",
            "reduce",
            str(ply),
            "-o",
            str(out),
            "--count",
            "3000",
            "--quality",
            "--size",
            "64",
            "--refit-steps",
            "0",
            "--json",
        ]
    )
    doc = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert doc["count_after"] == 3000 and doc["importance_method"] == "merge"
    assert doc["removed"] == {"merged": 3000}
    assert doc["size_ratio"] == pytest.approx(2.0, rel=0.01)
    assert len(doc["quality"]["views"]) == 8 and doc["quality"]["psnr"] > 30


def test_compare_a_file_with_itself_under_one_named_axis_is_identical(
    ply: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("torch", reason="torch (the 'quality' extra) is not installed")
    # --up names the frame of both files unless --b-up says otherwise
    assert main(["splat", "compare", str(ply), str(ply), "--up", "-y", "--size", "48", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["psnr"] == "inf"
    assert (
        main(["splat", "compare", str(ply), str(ply), "--up", "-y", "--b-up", "z", "--size", "48", "--json"])
        == 0
    )
    assert json.loads(capsys.readouterr().out)["psnr"] < 30


def test_compare_prints_per_view_and_mean(
    ply: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("torch", reason="torch (the 'quality' extra) is not installed")
    other = tmp_path / "o.splat"  # another format, another up axis: compared in A's frame
    assert main(["splat", "convert", str(ply), "-o", str(other)]) == 0
    capsys.readouterr()
    assert main(["splat", "compare", str(ply), str(other), "--views", "3", "--size", "48"]) == 0
    text = capsys.readouterr().out
    lines = [ln.split() for ln in text.splitlines()]
    assert [ln[0] for ln in lines[2:5]] == ["0", "1", "2"]
    assert lines[5][0] == "mean"
    # .splat drops SH and quantises colour, but the same object must be recognisably the same.
    assert float(lines[5][1]) > 25 and float(lines[5][2]) > 0.8
    assert main(["splat", "compare", str(ply), str(ply), "--views", "2", "--size", "32", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["psnr"] == "inf" and doc["ssim"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["reduce", "{missing}", "-o", "{out}"], "no such file"),
        (["reduce", "{ply}", "-o", "{tmp}/x.unknown"], "cannot tell the output format"),
        (["reduce", "{ply}", "-o", "{ply}"], "exists; use --force"),
        (["reduce", "{garbage}", "-o", "{out}"], "garbage.ply"),
        (["reduce", "{ply}", "-o", "{out}", "--cameras", "{garbage}"], "cameras"),
        (["compare", "{ply}", "{missing}"], "no such file"),
    ],
)
def test_errors_are_one_readable_line(
    ply: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    if "--cameras" in args or args[0] == "compare":  # without torch these stop at the install hint
        pytest.importorskip("torch", reason="torch (the 'quality' extra) is not installed")
    garbage = tmp_path / "garbage.ply"
    garbage.write_bytes(b"ply\nformat ascii 1.0\nthis is not a splat\n")
    names = {
        "missing": tmp_path / "missing.ply",
        "out": tmp_path / "out.ply",
        "ply": ply,
        "tmp": tmp_path,
        "garbage": garbage,
    }
    rc = main(["splat", *(a.format(**names) for a in args)])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("foto3d: error: ") and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_bad_option_values_are_usage_errors(ply: Path, tmp_path: Path) -> None:
    for bad in (
        ["--keep", "1.5"],
        ["--keep", "abc"],
        ["--count", "-3"],
        ["--min-opacity", "2"],
        ["--keep", "0.5", "--count", "3"],
    ):
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "foto3d.cli.main",
                "splat",
                "reduce",
                str(ply),
                "-o",
                str(tmp_path / "o.ply"),
                *bad,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 2
        assert "error: argument" in proc.stderr and "Traceback" not in proc.stderr


def test_compare_without_torch_says_how_to_install(ply: Path, tmp_path: Path) -> None:
    # A child interpreter where importing torch fails, as on a host without the extra.
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from foto3d.cli.main import main\n"
        f"sys.exit(main(['splat', 'compare', {str(ply)!r}, {str(ply)!r}]))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert "pip install 'foto3d[quality]'" in proc.stderr and "Traceback" not in proc.stderr
