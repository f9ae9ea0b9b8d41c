"""Orbiting by hand in headless Chromium: real mouse drags, keys, and the reduced-motion wish.

The rates under test are orbit.js's (docs/viewer.md says why): a drag across the canvas is one
full turn, elevation moves at a quarter of the azimuth's rate and within the default limits
(−20°…60°), so ten drags of any length leave a product view, never a top-down blob.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.viewer.pixels import canvas_rgb, object_mask
from tests.viewer.site import Site, tag
from tests.viewer.test_render import BACKGROUND, VIEWER, box, frames_later, settle

pytestmark = pytest.mark.timeout(420)

WIDTH, HEIGHT = 800, 600
MIN_ELEVATION, MAX_ELEVATION = -20.0, 60.0


async def view(page: Any) -> dict[str, float]:
    return dict(await page.evaluate(f"{VIEWER}.currentView()"))


async def open_viewer(
    page: Any, site: Site, width: int = WIDTH, height: int = HEIGHT, **attrs: str
) -> tuple[float, float]:
    """Opens clean.ply; returns the canvas centre in page coordinates."""
    await page.goto(
        site.page_url(tag(src=f"{site.base}/files/clean.ply", **attrs), width=width, height=height)
    )
    assert await settle(page) == "ready"
    bb = await page.locator("foto3d-viewer").bounding_box()
    return bb["x"] + bb["width"] / 2, bb["y"] + bb["height"] / 2


async def drag(page: Any, x: float, y: float, dx: float, dy: float, *, flick: bool) -> None:
    """A mouse drag by (dx, dy). Without ``flick`` the pointer rests before it is released (the
    viewer comes to rest meanwhile), so the release carries no speed and nothing glides."""
    await page.mouse.move(x, y)
    await page.mouse.down()
    await page.mouse.move(x + dx, y + dy, steps=10)
    if not flick:
        await frames_later(page)
    await page.mouse.up()
    await frames_later(page)


def turn(a: float, b: float) -> float:
    """The signed azimuth change from a to b in degrees, in (-180, 180]."""
    d = (b - a) % 360
    return d - 360 if d > 180 else d


async def test_a_drag_across_the_canvas_is_one_turn_and_elevation_moves_far_less(
    page: Any, site: Site
) -> None:
    x, y = await open_viewer(page, site)
    start = await view(page)
    await drag(page, x - 100, y, 200, 0, flick=False)
    after = await view(page)
    # 360° per canvas width: 200 px of 800 = 90° (the camera goes left: the object turns right)
    assert turn(start["azimuth"], after["azimuth"]) == pytest.approx(-90, abs=3), (start, after)
    assert after["elevation"] == pytest.approx(start["elevation"], abs=0.5)
    await drag(page, x, y - 100, 0, 200, flick=False)  # straight down: the camera rises, slowly
    climbed = await view(page)
    assert climbed["elevation"] - after["elevation"] == pytest.approx(90 / 4, abs=2), (after, climbed)
    assert abs(turn(after["azimuth"], climbed["azimuth"])) < 1


@pytest.mark.timeout(600)
async def test_ten_drags_of_several_lengths_leave_a_product_view(page: Any, site: Site) -> None:
    # a smaller embed (0.75°/px): the same gestures turn further, and each software frame is cheaper
    x, y = await open_viewer(page, site, 480, 360)
    framed = float(object_mask(await canvas_rgb(page), BACKGROUND).mean())
    # lengths from a nudge to more than half a turn, mostly sideways and drifting downwards (the
    # way a hand drags), some flicked (released moving: the view glides on), some held
    drags = [
        (36, 9),
        (120, 36),
        (-210, 54),
        (72, -24),
        (250, 90),
        (-120, 72),
        (180, 120),
        (-48, -18),
        (150, 108),
        (-310, 66),
    ]
    for i, (dx, dy) in enumerate(drags):
        await drag(page, x - dx / 2, y - dy / 2, dx, dy, flick=i % 2 == 0)
        v = await view(page)
        assert MIN_ELEVATION - 0.5 <= v["elevation"] <= MAX_ELEVATION + 0.5, (
            f"after drag {i + 1} {dx, dy}: {v}"
        )
    mask = object_mask(await canvas_rgb(page), BACKGROUND)
    coverage = float(mask.mean())
    assert 0.6 < coverage / framed < 1.6, f"the object covers {coverage:.1%}, framed it covered {framed:.1%}"
    x0, x1, y0, y1 = box(mask)
    assert x0 > 0.01 and x1 < 0.99 and y0 > 0.01 and y1 < 0.99, f"touches the edge {x0, x1, y0, y1}"


async def test_keys_turn_and_zoom_with_a_visible_focus_ring(page: Any, site: Site) -> None:
    await open_viewer(page, site)
    await page.keyboard.press("Tab")
    focus = await page.evaluate(
        f"""() => {{
          const el = {VIEWER};
          const c = el.shadowRoot.activeElement;
          const s = c ? getComputedStyle(c) : null;
          return c && [c.tagName, s.outlineStyle, parseFloat(s.outlineWidth)];
        }}"""
    )
    assert focus is not None, "Tab does not reach the viewer"
    name, outline, width = focus
    assert name == "CANVAS" and outline != "none" and width >= 2, focus
    start = await view(page)
    for key in ("ArrowRight", "ArrowRight", "ArrowUp"):
        await page.keyboard.press(key)
    await frames_later(page)
    turned = await view(page)
    assert turn(start["azimuth"], turned["azimuth"]) == pytest.approx(-30, abs=1), (start, turned)
    assert turned["elevation"] - start["elevation"] == pytest.approx(6, abs=1), (start, turned)
    await page.keyboard.press("+")
    await frames_later(page)
    closer = await view(page)
    assert closer["distance"] < turned["distance"] * 0.95, (turned, closer)
    await page.keyboard.press("-")
    await page.keyboard.press("-")
    await frames_later(page)
    assert (await view(page))["distance"] > closer["distance"] * 1.2


async def test_auto_rotate_turns_unless_the_visitor_asks_for_reduced_motion(page: Any, site: Site) -> None:
    await page.emulate_media(reduced_motion="reduce")
    await page.goto(site.page_url(tag(src=f"{site.base}/files/clean.ply", **{"auto-rotate": "30"})))
    await page.wait_for_function(f"() => {VIEWER}?.state === 'ready'", timeout=90_000)
    # no rotation: the viewer comes to rest (an auto-rotating one draws for ever)
    await page.wait_for_function(f"() => {VIEWER}.idle", timeout=60_000)
    still = await view(page)
    await page.emulate_media(reduced_motion="no-preference")  # the wish changes live
    await page.wait_for_function(
        f"(az) => Math.abs({VIEWER}.currentView().azimuth - az) > 3", arg=still["azimuth"], timeout=60_000
    )


async def test_one_finger_turns_and_two_fingers_pinch(page: Any, site: Site) -> None:
    x, y = await open_viewer(page, site)
    cdp = await page.context.new_cdp_session(page)
    await cdp.send("Emulation.setTouchEmulationEnabled", {"enabled": True, "maxTouchPoints": 2})

    async def touch(kind: str, points: list[tuple[float, float]]) -> None:
        pts = [{"x": px, "y": py, "id": i} for i, (px, py) in enumerate(points)]
        await cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": pts})

    start = await view(page)
    await touch("touchStart", [(x - 100, y)])
    for step in range(1, 11):
        await touch("touchMove", [(x - 100 + 20 * step, y)])
    await frames_later(page)  # the finger rests before it lifts: no glide
    await touch("touchEnd", [])
    await frames_later(page)
    turned = await view(page)
    assert turn(start["azimuth"], turned["azimuth"]) == pytest.approx(-90, abs=3), (start, turned)

    await touch("touchStart", [(x - 40, y), (x + 40, y)])
    for step in range(1, 9):
        await touch("touchMove", [(x - 40 - 10 * step, y), (x + 40 + 10 * step, y)])
    await touch("touchEnd", [])
    await frames_later(page)
    pinched = await view(page)
    assert pinched["distance"] < turned["distance"] * 0.8, (turned, pinched)  # fingers apart: closer
    assert turn(turned["azimuth"], pinched["azimuth"]) == pytest.approx(0, abs=1)
