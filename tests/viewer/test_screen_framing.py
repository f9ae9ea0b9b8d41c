"""The default view fills the screen the visitor has: a portrait phone shows a tall object tall.

The share of the frame the object fills is measured from the picture (the canvas read back),
not from the viewer's own numbers. The SuperSplat viewer, the peer on phones, shows real
product scenes at 0.61–0.67 of a portrait phone's height (docs/benchmarks.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from foto3d.libs.splat import io as splat_io
from foto3d.libs.splat.synthetic import synthetic_object
from tests.viewer.pixels import canvas_rgb, object_mask
from tests.viewer.site import Site, tag
from tests.viewer.test_render import BACKGROUND, VIEWER, box, frames_later, settle

pytestmark = pytest.mark.timeout(300)

PHONE = (412, 823)  # Lighthouse's mobile viewport, CSS pixels
LANDSCAPE = (800, 600)
PEER_HEIGHT_SHARE = 0.6  # the peer's portrait share on real scenes, rounded down
# What the sphere-on-the-narrower-field framing showed in landscape (measured before the box
# fit): the object may grow there, never shrink.
OLD_LANDSCAPE = {"vase": 0.36, "clean": 0.62}

# synthetic_object(20_000) lays out its vase-like body first: 0.56 wide, 0.9 tall (+Z up).
BODY = 11_000


@pytest.fixture(scope="module")
def vase(splat_files: Path) -> str:
    path = splat_files / "vase.ply"
    if not path.exists():
        body = synthetic_object(20_000, sh_degree=1, seed=3).subset(np.arange(BODY))
        splat_io.write(body, path, up="z")
    return path.name


async def extent(page: Any) -> tuple[float, float]:
    """(width share, height share) of the frame the object covers, from the picture."""
    x0, x1, y0, y1 = box(object_mask(await canvas_rgb(page), BACKGROUND))
    return x1 - x0, y1 - y0


async def resize(page: Any, size: tuple[int, int]) -> None:
    await page.set_viewport_size({"width": max(size[0], 420), "height": max(size[1], 830)})
    await page.evaluate(
        f"([w, h]) => {{ const v = {VIEWER}; v.style.width = w + 'px'; v.style.height = h + 'px'; }}",
        list(size),
    )
    await page.wait_for_function(
        f"([w, h]) => {{ const c = {VIEWER}.shadowRoot.querySelector('canvas');"
        " return c.clientWidth === w && c.clientHeight === h; }",
        arg=list(size),
    )
    await frames_later(page)


async def test_a_portrait_phone_shows_a_tall_object_tall_and_turning_it_reframes(
    page: Any, site: Site, vase: str
) -> None:
    await page.set_viewport_size({"width": PHONE[0], "height": PHONE[1]})
    await page.goto(site.page_url(tag(src=f"{site.base}/files/{vase}"), width=PHONE[0], height=PHONE[1]))
    assert await settle(page) == "ready"
    w, h = await extent(page)
    assert h >= PEER_HEIGHT_SHARE, f"portrait: the object fills {h:.2f} of the height"
    assert w < 0.98, f"portrait: the object is cut at the sides ({w:.2f} of the width)"

    # the phone turned: framed again for landscape, no smaller than the old framing showed it
    await resize(page, LANDSCAPE)
    w, h = await extent(page)
    assert h >= OLD_LANDSCAPE["vase"], f"landscape: the object fills {h:.2f} of the height"
    assert h < 0.98 and w < 0.98, (w, h)

    # once the visitor has turned the model, a resize keeps their distance (the zoom range may
    # still clamp it) rather than snapping back to the default framing
    canvas = page.locator("foto3d-viewer")
    bb = await canvas.bounding_box()
    cx, cy = bb["x"] + bb["width"] / 2, bb["y"] + bb["height"] / 2
    await page.mouse.move(cx, cy)
    await page.mouse.down()
    await page.mouse.move(cx + 60, cy, steps=4)
    await page.mouse.up()
    await frames_later(page)
    before = await page.evaluate(f"{VIEWER}.controls.view.distance")
    await resize(page, (700, 600))
    after = await page.evaluate(f"{VIEWER}.controls.view.distance")
    assert after == pytest.approx(before), (before, after)


async def test_landscape_framing_is_no_smaller_than_before(page: Any, site: Site) -> None:
    await page.set_viewport_size({"width": LANDSCAPE[0] + 20, "height": LANDSCAPE[1] + 20})
    await page.goto(
        site.page_url(tag(src=f"{site.base}/files/clean.ply"), width=LANDSCAPE[0], height=LANDSCAPE[1])
    )
    assert await settle(page) == "ready"
    w, h = await extent(page)
    # the wide object (a vase and a box on a turntable): the larger of its two shares
    assert max(w, h) >= OLD_LANDSCAPE["clean"], f"landscape: {w:.2f} wide, {h:.2f} tall"
    assert w < 0.98 and h < 0.98, (w, h)
