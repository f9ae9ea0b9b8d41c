"""The re-fit: it gains on held-out views, keeps the best step, never returns something worse
than its input, and stops at its time budget. Tiny scenes and few steps: seconds, not minutes."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="torch (the 'quality' extra) is not installed")

from foto3d.cli.main import main
from foto3d.libs.splat import read, write
from foto3d.libs.splat.model import Splat
from foto3d.libs.splat.quality import orbit_cameras, psnr
from foto3d.libs.splat.reduce import RECOMMENDED_REFIT_STEPS, reduce_splat
from foto3d.libs.splat.refit import RefitOptions, refit
from foto3d.libs.splat.render import render_views
from foto3d.libs.splat.synthetic import synthetic_object

SMALL = RefitOptions(steps=30, views=8, size=40, check_views=3, check_size=56, check_every=10, patience=3)


@pytest.fixture(scope="module")
def pair() -> tuple[Splat, Splat]:
    original = synthetic_object(3000, sh_degree=1, seed=4)
    merged, _ = reduce_splat(original, keep=0.2)
    return original, merged


def _orbit_psnr(a: Splat, b: Splat) -> float:
    cams = orbit_cameras(a, views=4, size=48, up="z")
    ra, rb = render_views(a, cams), render_views(b, cams)
    return float(np.mean([psnr(x.image, y.image) for x, y in zip(ra, rb, strict=True)]))


def test_refit_gains_on_held_out_and_orbit_views(pair: tuple[Splat, Splat]) -> None:
    original, merged = pair
    res = refit(original, merged, up="z", options=SMALL)
    assert res.steps > 0 and res.best_step > 0
    assert res.psnr_after > res.psnr_before + 0.3
    # Views neither the fit nor the check used agree that it got better.
    assert _orbit_psnr(original, res.splat) > _orbit_psnr(original, merged) + 0.3
    assert res.splat.count == merged.count and res.splat.sh_degree == merged.sh_degree


def test_a_diverging_fit_returns_the_input_unchanged(pair: tuple[Splat, Splat]) -> None:
    original, merged = pair
    wild = dataclasses.replace(
        SMALL, lr_opacity=50.0, lr_color=50.0, lr_scale=50.0, lr_mean=1.0, patience=1, lr_cuts=0
    )
    res = refit(original, merged, up="z", options=wild)
    assert res.best_step == 0 and res.stopped == "no gain" and res.steps == 10 and res.lr_cuts == 0
    assert res.psnr_after == res.psnr_before
    for name in ("means", "scales", "opacities", "sh0", "shN"):
        assert np.array_equal(getattr(res.splat, name), getattr(merged, name)), name


def test_a_plateau_cuts_the_rates_before_the_fit_gives_up(pair: tuple[Splat, Splat]) -> None:
    """Each check without a gain after ``patience`` cuts the rates once; only then does it stop."""
    original, merged = pair
    wild = dataclasses.replace(
        SMALL, steps=100, lr_opacity=50.0, lr_color=50.0, lr_scale=50.0, lr_mean=1.0, patience=1, lr_cuts=2
    )
    res = refit(original, merged, up="z", options=wild)
    # Checks at 10 and 20 cut the rates (50 -> 15 -> 4.5, still far too high to gain), 30 stops.
    assert res.stopped == "no gain" and res.lr_cuts == 2 and res.steps == 30
    assert res.best_step == 0 and res.psnr_after == res.psnr_before


def test_stops_at_its_time_budget(pair: tuple[Splat, Splat]) -> None:
    original, merged = pair
    res = refit(original, merged, up="z", options=dataclasses.replace(SMALL, steps=10_000, seconds=0.5))
    assert res.stopped == "time" and res.steps < 10_000
    assert res.psnr_after >= res.psnr_before


def test_reduce_reports_the_refit_and_lowering_the_degree_alone_is_refitted(
    pair: tuple[Splat, Splat],
) -> None:
    original, _ = pair
    out, rep = reduce_splat(original, keep=None, sh_degree=0, refit_steps=3)
    assert out.sh_degree == 0 and rep.refit is not None and rep.refit["steps"] == 3
    same, rep = reduce_splat(original, keep=None, refit_steps=3)
    assert rep.refit is None and np.array_equal(same.means, original.means)  # nothing changed: no fit
    with pytest.raises(ValueError, match="refit seconds"):
        reduce_splat(original, refit_steps=3, refit_seconds=0)


def test_cli_refits_by_default_and_reports_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in.ply"
    write(synthetic_object(1500, sh_degree=0, seed=5), src, up="z")
    out = tmp_path / "out.ply"
    assert (
        main(["splat", "reduce", str(src), "-o", str(out), "--keep", "0.3", "--refit-seconds", "3", "--json"])
        == 0
    )
    doc = json.loads(capsys.readouterr().out)
    # The default runs until its step cap, its budget or no gain on the held-out views.
    assert doc["refit"]["steps"] <= RECOMMENDED_REFIT_STEPS
    assert doc["refit"]["stopped"] != "steps" or doc["refit"]["steps"] == RECOMMENDED_REFIT_STEPS
    assert doc["refit"]["check_psnr_after"] >= doc["refit"]["check_psnr_before"]
    assert read(out).count == 450
    assert (
        main(["splat", "reduce", str(src), "-o", str(out), "--keep", "0.3", "--refit-steps", "0", "--force"])
        == 0
    )
    assert "re-fit:" not in capsys.readouterr().out
