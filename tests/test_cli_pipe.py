"""A reader that goes away (`foto3d … | head -1`) ends every command quietly: no traceback.

Each case runs the real `foto3d` with its stdout on a real pipe whose reading end is
already closed, the way `head -1` leaves it after the first line.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from foto3d.cli.main import CLOSED_PIPE_EXIT
from foto3d.libs import splat as S
from foto3d.libs.splat.synthetic import synthetic_object

REPO = Path(__file__).resolve().parents[1]


def run_into_closed_pipe(args: list[str], data: Path) -> tuple[int, str]:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first byte
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOTO3D_")}
    env["FOTO3D_DATA"] = str(data)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "foto3d.cli.main", *args],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write_end)
    return proc.returncode, proc.stderr


@pytest.fixture
def ply(tmp_path: Path) -> Path:
    p = tmp_path / "scene.ply"
    S.write(synthetic_object(200, sh_degree=1, seed=1), p, up="z")
    return p


@pytest.mark.parametrize(
    ("args", "codes"),
    [
        (["splat", "info", "{ply}"], {CLOSED_PIPE_EXIT}),
        (["splat", "info", "{ply}", "--json"], {CLOSED_PIPE_EXIT}),
        # argparse itself swallows the write error of its help text and exits 0.
        (["--help"], {0, CLOSED_PIPE_EXIT}),
        (["schema", "--check"], {CLOSED_PIPE_EXIT}),
    ],
    ids=["splat-info", "splat-info-json", "help", "schema-check"],
)
def test_closed_pipe_ends_quietly(args: list[str], codes: set[int], ply: Path, tmp_path: Path) -> None:
    code, err = run_into_closed_pipe([a.format(ply=ply) for a in args], tmp_path / "data")
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert err == ""
    assert code in codes
