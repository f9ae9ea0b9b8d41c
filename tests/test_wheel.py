"""The wheel built from the tree is complete: installed in a fresh venv, `foto3d` runs anywhere.

``foto3d/proto``, ``foto3d/libs`` and ``foto3d/services`` are links to the top-level
folders; the build must store real files under ``foto3d/`` (not links, not the editable
install's path hook). The fresh venv gets the wheel itself, and borrows only the
third-party packages of the test venv (a path line, whose own .pth files, among them
the editable install's hook, are not processed).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SKIP = shutil.ignore_patterns(
    ".venv", ".git", "node_modules", "build", "dist", "*.egg-info", "__pycache__", ".*_cache"
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Build from a copy, so the build leaves nothing in the tree (build/, *.egg-info).
    src = tmp_path_factory.mktemp("src") / "foto3d"
    shutil.copytree(ROOT, src, symlinks=True, ignore=SKIP)
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(src),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("foto3d-*.whl")
    return built


def test_the_wheel_holds_every_layer_as_real_files(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        links = [i.filename for i in z.infolist() if (i.external_attr >> 16) & 0o170000 == 0o120000]
    assert not links
    for path in (
        "foto3d/proto/jobs.py",
        "foto3d/libs/settings.py",
        "foto3d/services/queue/service.py",
        "foto3d/services/trainer/__init__.py",
        "foto3d/services/catalog/static/catalog.js",
        "foto3d/cli/main.py",
        "foto3d/rig/panel.html",
    ):
        assert path in names, path
    assert not any(n.startswith(("tests/", "testkit/", "bench/")) for n in names)


def test_the_installed_wheel_runs_from_another_directory(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    py = env_dir / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(py),
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    # Third-party dependencies only: a path line, so the test venv's own .pth files (the
    # editable install's hook among them) are not run.
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = subprocess.run(
        [
            str(py),
            "-c",
            "import foto3d.services.queue.service as m, foto3d; print(m.__file__); print(foto3d.__file__)",
        ],
        cwd=elsewhere,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert all(p.startswith(str(site)) for p in where), where
    run = subprocess.run(
        [str(py), "-m", "foto3d.cli.main", "--help"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "serve" in run.stdout and "submit" in run.stdout
