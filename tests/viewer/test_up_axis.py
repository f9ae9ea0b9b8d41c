"""A bare ``.ply`` is upright as ``libs/splat`` reads it: the header's ``Vertical Axis`` comment
when there is one (our trainer's, nerfstudio's), else -Y (3DGS/INRIA and PlayCanvas files)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from tests.viewer.pixels import canvas_rgb, object_mask
from tests.viewer.site import Site, tag
from tests.viewer.test_render import BACKGROUND, settle

pytestmark = pytest.mark.timeout(240)


def iou(a: npt.NDArray[np.bool_], b: npt.NDArray[np.bool_]) -> float:
    return float((a & b).sum() / (a | b).sum())


async def shown(page: Any, site: Site, name: str) -> npt.NDArray[np.bool_]:
    await page.goto(site.page_url(tag(src=f"{site.base}/files/{name}")))
    assert await settle(page) == "ready"
    return object_mask(await canvas_rgb(page), BACKGROUND)


async def test_trainer_and_third_party_ply_both_render_upright(page: Any, site: Site) -> None:
    # The same object three ways: our trainer's .ply (+Z data, `comment Vertical Axis: z`), a
    # third-party .ply (-Y data, no comment) and the .spz, whose axis its format fixes.
    reference = await shown(page, site, "clean.spz")
    trainer = await shown(page, site, "clean.ply")
    third_party = await shown(page, site, "clean-3dgs.ply")
    assert iou(trainer, reference) > 0.8, (
        f"the trainer's .ply is not upright (IoU {iou(trainer, reference):.2f})"
    )
    assert iou(third_party, reference) > 0.8, (
        f"a .ply without an axis comment is not upright as -Y (IoU {iou(third_party, reference):.2f})"
    )


async def test_the_file_entry_overrides_the_header(page: Any, site: Site) -> None:
    # An axis given with the model (the config's `up`, as the review passes the publisher's
    # record) wins over the header: saying +Z for the -Y file lays it on its side, so the picture
    # differs from the upright one (which also shows that the comparison above can tell them apart).
    upright = await shown(page, site, "clean-3dgs.ply")
    await page.goto(site.page_url(tag(src=f"{site.base}/files/clean-3dgs.ply", config='{"up": "z"}')))
    assert await settle(page) == "ready"
    sideways = object_mask(await canvas_rgb(page), BACKGROUND)
    assert iou(upright, sideways) < 0.8
