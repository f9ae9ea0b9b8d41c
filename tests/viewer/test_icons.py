"""Icons are inline SVG, never font glyphs: no text of the viewer or its embed page is drawn as a
missing-glyph box (U+26F6, the old full-screen sign, was one in Debian's Chromium)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.viewer.glyphs import missing_glyphs
from tests.viewer.site import Site, tag
from tests.viewer.test_render import VIEWER, settle

pytestmark = pytest.mark.timeout(240)


async def assert_icons_are_svg(page: Any) -> None:
    assert await missing_glyphs(page) == []
    button = await page.evaluate(
        f"""() => {{
          const b = {VIEWER}.shadowRoot.querySelector('.fullscreen');
          return [b.textContent.trim(), b.querySelectorAll('svg path').length, b.getAttribute('aria-label')];
        }}"""
    )
    text, paths, label = button
    assert text == "" and paths >= 1, f"the full-screen button shows text {text!r}, not an SVG icon"
    assert label, "an icon-only button needs an accessible name"


async def test_the_component_draws_no_missing_glyph_box(page: Any, site: Site) -> None:
    await page.goto(site.page_url(tag(src=f"{site.base}/files/clean.ply")))
    assert await settle(page) == "ready"
    await assert_icons_are_svg(page)


async def test_the_customer_embed_draws_no_missing_glyph_box(page: Any, site: Site) -> None:
    size = (site.files_dir / "clean.spz").stat().st_size
    site.models["acme-vase-001"] = {
        "files": [
            {"format": "spz", "url": f"{site.base}/files/clean.spz", "bytes": size, "sha256": "0" * 64}
        ],
        "config": {},
    }
    await page.goto(f"{site.base}/embed/acme-vase-001?key=pk_test")
    assert await settle(page) == "ready"
    await assert_icons_are_svg(page)
    # and the card a visitor meets when the model is gone
    await page.goto(f"{site.base}/embed/acme-gone-404?key=pk_test")
    assert await settle(page) == "unavailable"
    await assert_icons_are_svg(page)
