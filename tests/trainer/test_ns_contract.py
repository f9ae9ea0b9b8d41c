"""The trainer's nerfstudio command lines against nerfstudio 1.1.5's own option lists.

The fake ``ns-*`` tools read the options from the ``--help`` the real 1.1.5 printed
(``scripts/nerfstudio-help.sh``) and refuse any other, as tyro does; before, they accepted
any flag, so a misspelt or removed option passed every test.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from foto3d.services.trainer.pipeline import export_argv, process_argv, train_argv
from foto3d.services.trainer.settings import TrainerSettings
from tests.fake_nerfstudio import fakens
from tests.trainer.helpers import FAKE_NS, fake_env, make_dataset, work_item


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = FAKE_NS / argv[0]
    return subprocess.run(
        [sys.executable, str(exe), *argv[1:]],
        env=fake_env({"FAKE_NS_STEP_DELAY": "0"}),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _options(argv: list[str]) -> set[str]:
    return {a for a in argv if a.startswith("--")}


def test_the_dumped_help_is_nerfstudio_1_1_5s() -> None:
    for name in ("ns-train-splatfacto", "ns-process-data-images", "ns-export-gaussian-splat"):
        text = (fakens.HELP_DIR / f"{name}.txt").read_text()
        assert "nerfstudio==1.1.5" in text.splitlines()[0], f"{name}.txt was not made from nerfstudio 1.1.5"
        assert len(fakens.known_options(name)) >= 5


def test_the_trainers_command_lines_are_all_known_to_nerfstudio(tmp_path: Path) -> None:
    cfg = TrainerSettings(train_args=["--pipeline.model.cull-alpha-thresh", "0.005"])
    item = work_item(tmp_path / "ds", steps=100)
    train = train_argv(tmp_path / "ds", tmp_path / "out", item, "run", cfg)
    assert _options(train) <= fakens.known_options("ns-train-splatfacto")
    assert _options(process_argv(tmp_path / "raw", tmp_path / "p")) <= fakens.known_options(
        "ns-process-data-images"
    )
    assert _options(export_argv(tmp_path / "c.yml", tmp_path / "e")) <= fakens.known_options(
        "ns-export-gaussian-splat"
    )


def test_the_real_command_lines_pass_the_fake(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "ds")
    item = work_item(data, steps=100)
    out = tmp_path / "out"
    done = _run(train_argv(data, out, item, "run", TrainerSettings()), tmp_path)
    assert done.returncode == 0, done.stderr
    config = next(out.glob("**/config.yml"))
    done = _run(export_argv(config, tmp_path / "export"), tmp_path)
    assert done.returncode == 0, done.stderr
    raw = make_dataset(tmp_path / "raw", processed=False)
    done = _run(process_argv(raw, tmp_path / "processed"), tmp_path)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("tool", "argv", "bad"),
    [
        (
            "ns-train",
            ["splatfacto", "--data", "x", "--output-dir", "o", "--max-num-iteration", "5"],
            "--max-num-iteration",
        ),
        (
            "ns-train",
            ["splatfacto", "--data", "x", "--output-dir", "o", "--pipeline.model.sh_degree", "3"],
            "--pipeline.model.sh_degree",
        ),
        (
            "ns-export",
            ["gaussian-splat", "--load-config", "c.yml", "--output-dir", "e", "--format=ply"],
            "--format",
        ),
        (
            "ns-process-data",
            ["images", "--data", "x", "--output-dir", "p", "--matcher", "exhaustive"],
            "--matcher",
        ),
    ],
)
def test_an_option_nerfstudio_does_not_know_is_refused(
    tool: str, argv: list[str], bad: str, tmp_path: Path
) -> None:
    done = _run([tool, *argv], tmp_path)
    assert done.returncode == 2
    assert f"Unrecognized options: {bad} " in done.stderr


def test_a_misspelt_extra_train_arg_fails_the_job_step(tmp_path: Path) -> None:
    """``[trainer] train_args`` go straight to ns-train: a typo there is refused, not ignored."""
    data = make_dataset(tmp_path / "ds")
    cfg = TrainerSettings(train_args=["--pipeline.model.cull-alpha-tresh", "0.005"])
    done = _run(train_argv(data, tmp_path / "out", work_item(data, steps=100), "run", cfg), tmp_path)
    assert done.returncode == 2 and "--pipeline.model.cull-alpha-tresh" in done.stderr
