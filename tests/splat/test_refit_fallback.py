"""Without torch the re-fit falls back to the merged result and says so once."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from foto3d.cli import splat_reduce
from foto3d.libs.splat import reduce as reduce_mod
from foto3d.libs.splat.reduce import reduce_splat
from foto3d.libs.splat.synthetic import synthetic_object


def test_without_torch_the_merge_is_returned_with_a_note(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "foto3d.libs.splat.refit", None)  # importing it now fails
    s = synthetic_object(800, sh_degree=1, seed=3)
    plain, _ = reduce_splat(s, keep=0.5)
    out, rep = reduce_splat(s, keep=0.5, refit_steps=50)
    assert rep.refit is None and len(rep.notes) == 1 and "torch" in rep.notes[0]
    assert [r.message for r in caplog.records if "torch" in r.message] == rep.notes
    assert np.array_equal(out.means, plain.means)
    assert rep.to_dict()["notes"] == rep.notes


def test_cli_defaults_match_the_library() -> None:
    # The CLI repeats the numbers so that `--help` need not import numpy; they must agree.
    assert splat_reduce.RECOMMENDED_REFIT_STEPS == reduce_mod.RECOMMENDED_REFIT_STEPS
    assert splat_reduce.RECOMMENDED_REFIT_SECONDS == reduce_mod.RECOMMENDED_REFIT_SECONDS
    assert splat_reduce.REFIT_BUDGET_GAUSSIANS == reduce_mod.REFIT_BUDGET_GAUSSIANS
    assert splat_reduce.RECOMMENDED_REFIT_MAX_SECONDS == reduce_mod.RECOMMENDED_REFIT_MAX_SECONDS


def test_the_default_refit_budget_grows_with_the_input() -> None:
    budget = reduce_mod.recommended_refit_seconds
    assert budget(1_000) == budget(62_500) == 120.0
    assert budget(125_000) == 240.0 and budget(250_000) == 480.0
    assert budget(500_000) == budget(5_000_000) == 600.0
