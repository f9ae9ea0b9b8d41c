"""The splat budget: a model with more splats than the device class's budget is drawn with
exactly the budget's count, and the splats kept are the important ones (src/budget.js).

The model is built so that the answer is known: a third of its splats are opaque and larger
(the reducer's `area` importance, opacity x projected area, puts every one of them above every
other splat), so a budget of that third must keep exactly them. The proof that it did: the
trimmed model's picture equals that of a file holding only those splats, and every kept splat
has the opaque splats' alpha."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from foto3d.libs.splat import io as splat_io
from foto3d.libs.splat.model import Splat
from foto3d.libs.splat.synthetic import synthetic_object
from tests.viewer.pixels import canvas_rgb
from tests.viewer.site import Site, serve_site, tag
from tests.viewer.test_render import VIEWER, settle

pytestmark = pytest.mark.timeout(300)

N = 6_000
IMPORTANT = 2_000
OPAQUE_ALPHA = 242  # sigmoid(3) x 255, as Spark stores it (8 bits)

_KEPT_ALPHAS = f"""() => {{
  const p = {VIEWER}.mesh.packedSplats;
  const out = [];
  for (let i = 0; i < p.numSplats; i++) out.push(p.packedArray[i * 4] >>> 24);
  return out;
}}"""


def _model() -> tuple[Splat, np.ndarray]:
    """A synthetic product whose important splats are known: (splat, their indices)."""
    base = synthetic_object(N, sh_degree=1, seed=5)
    rng = np.random.default_rng(7)
    important = np.sort(rng.choice(N, IMPORTANT, replace=False))
    is_important = np.zeros(N, bool)
    is_important[important] = True
    # every splat about 1.5 cm, within ±10 % per axis; the important ones 1.65× larger and opaque
    scales = np.log(0.015) + rng.uniform(-0.1, 0.1, (N, 3)) + np.where(is_important, 0.5, 0.0)[:, None]
    opacities = np.where(is_important, 3.0, -1.0)
    splat = Splat(base.means, scales, base.quats, opacities, base.sh0, base.shN)
    return splat, important


@pytest.fixture(scope="module")
def budget_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("budget")
    splat, important = _model()
    splat_io.write(splat, out / "all.ply", up="z")
    splat_io.write(splat.subset(important), out / "important.ply", up="z")
    return out


@pytest.fixture
async def budget_site(budget_files: Path) -> Any:
    async with serve_site(budget_files) as s:
        yield s


async def _load(page: Any, site: Site, name: str, max_splats: str) -> dict[str, Any]:
    await page.goto(site.page_url(tag(src=f"{site.base}/files/{name}", **{"max-splats": max_splats})))
    assert await settle(page) == "ready"
    state: dict[str, Any] = await page.evaluate(
        f"() => ({{...{VIEWER}.splats, drawn: {VIEWER}.spark.drawnSplats}})"
    )
    return state


async def test_a_model_over_the_budget_keeps_its_most_important_splats(page: Any, budget_site: Site) -> None:
    full = await _load(page, budget_site, "all.ply", "none")
    assert full["total"] == N and full["kept"] == N and not full["trimmed"]
    assert full["drawn"] == N

    trimmed = await _load(page, budget_site, "all.ply", str(IMPORTANT))
    assert trimmed["total"] == N and trimmed["trimmed"]
    assert trimmed["kept"] == IMPORTANT, trimmed
    assert trimmed["drawn"] == IMPORTANT, f"{trimmed['drawn']} splats drawn for a budget of {IMPORTANT}"
    assert trimmed["inWorker"], "the budget was applied on the page's thread"
    alphas = np.array(await page.evaluate(_KEPT_ALPHAS))
    assert len(alphas) == IMPORTANT
    assert (np.abs(alphas - OPAQUE_ALPHA) <= 1).all(), (
        f"kept splats with alpha {sorted(set(alphas.tolist()))[:8]}"
    )
    picture = await canvas_rgb(page)

    # the same splats, from a file that holds only them: the same picture (SH and order included)
    only = await _load(page, budget_site, "important.ply", "none")
    assert only["total"] == IMPORTANT and only["drawn"] == IMPORTANT
    expected = await canvas_rgb(page)
    diff = np.abs(picture.astype(np.int16) - expected.astype(np.int16)).max(axis=2)
    assert (diff > 2).mean() < 0.001, f"{int((diff > 2).sum())} pixels differ, by up to {int(diff.max())}"

    # a tighter budget than the important third: fewer, still exactly the budget's count
    tighter = await _load(page, budget_site, "all.ply", "500")
    assert tighter["kept"] == 500 and tighter["drawn"] == 500


async def test_the_budget_follows_the_device_class(page: Any, site: Site) -> None:
    await page.goto(site.page_url(tag(src=f"{site.base}/files/clean.spz")))
    assert await settle(page) == "ready"
    desktop = await page.evaluate(f"{VIEWER}.splats")
    assert desktop["deviceClass"] in ("desktop", "phone")  # phone where the machine has <= 4 GB
    assert not desktop["trimmed"] and desktop["kept"] == desktop["total"]

    cdp = await page.context.new_cdp_session(page)
    await cdp.send(
        "Emulation.setDeviceMetricsOverride",
        {
            "width": 412,
            "height": 823,
            "deviceScaleFactor": 1.75,
            "mobile": True,
            "screenWidth": 412,
            "screenHeight": 823,
        },
    )
    await cdp.send("Emulation.setTouchEmulationEnabled", {"enabled": True, "maxTouchPoints": 5})
    await page.goto(site.page_url(tag(src=f"{site.base}/files/clean.spz"), width=412, height=600))
    assert await settle(page) == "ready"
    phone = await page.evaluate(f"{VIEWER}.splats")
    assert phone["deviceClass"] == "phone" and phone["budget"] == 400_000 and phone["source"] == "device"
    gpu_bytes = phone["gpuBytes"]
    assert gpu_bytes > phone["kept"] * 16, "no estimate of the model's GPU memory"
