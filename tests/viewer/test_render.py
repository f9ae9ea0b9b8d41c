"""The component in headless Chromium: renders, frames the object, honours options, never goes blank."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from foto3d.libs.splat import io as splat_io
from foto3d.libs.splat.synthetic import synthetic_object
from tests.viewer.pixels import canvas_rgb, object_mask
from tests.viewer.site import Site, tag

pytestmark = pytest.mark.timeout(240)

BACKGROUND = (238, 240, 243)  # the default neutral background, #eef0f3
VIEWER = "document.querySelector('foto3d-viewer')"


async def settle(page: Any, timeout_ms: int = 90_000) -> str:
    """Wait until the viewer has drawn the model (or given up); returns its final state."""
    await page.wait_for_function(
        f"() => ['ready', 'unavailable'].includes({VIEWER}?.state)", timeout=timeout_ms
    )
    state = str(await page.evaluate(f"{VIEWER}.state"))
    if state == "ready":
        # Spark sorts in a worker: wait until the sorted splats are drawn and the viewer rests.
        await page.wait_for_function(f"() => {VIEWER}.idle", timeout=timeout_ms)
    return state


async def frames_later(page: Any) -> None:
    """After a change: wait until the viewer has drawn it and rests again."""
    await page.wait_for_function(f"() => {VIEWER}.idle", timeout=180_000)


def box(mask: npt.NDArray[np.bool_]) -> tuple[float, float, float, float]:
    """The object's extent as fractions of the frame (x0, x1, y0, y1), ignoring the last 0.2 % of
    its pixels on each side (the soft tails of a few gaussians beyond the robust bounds)."""
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    x0, x1 = np.percentile(xs, [0.2, 99.8]) / w
    y0, y1 = np.percentile(ys, [0.2, 99.8]) / h
    return float(x0), float(x1), float(y0), float(y1)


def collect_console(page: Any) -> list[str]:
    messages: list[str] = []
    page.on("console", lambda m: messages.append(m.text) if m.type == "error" else None)
    return messages


async def test_generated_splat_renders_framed_from_every_orbit_angle(page: Any, site: Site) -> None:
    await page.goto(site.page_url(tag(src=f"{site.base}/files/clean.ply")))
    assert await settle(page) == "ready"
    for azimuth in (0, 120, 240):
        for elevation in (5, 45, 80):
            await page.evaluate(
                f"([az, el]) => {VIEWER}.applyConfig({{camera: {{azimuth: az, elevation: el}}}})",
                [azimuth, elevation],
            )
            await frames_later(page)
            mask = object_mask(await canvas_rgb(page), BACKGROUND)
            share = float(mask.mean())
            where = f"azimuth {azimuth}, elevation {elevation}"
            assert 0.05 < share < 0.6, f"{where}: the object covers {share:.1%} of the frame"
            x0, x1, y0, y1 = box(mask)
            assert x0 > 0.01 and x1 < 0.99 and y0 > 0.01 and y1 < 0.99, (
                f"{where}: touches the edge {x0, x1, y0, y1}"
            )
            assert max(x1 - x0, y1 - y0) > 0.35, f"{where}: too small {x0, x1, y0, y1}"
            # the orbit centre is the robust box centre; perspective from steep angles shifts the picture a little
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            assert abs(cx - 0.5) < 0.15 and abs(cy - 0.5) < 0.15, f"{where}: centred at {cx:.2f}, {cy:.2f}"


async def test_orbit_drags_and_zoom_out_keep_the_object_in_view(page: Any, site: Site) -> None:
    await page.goto(site.page_url(tag(src=f"{site.base}/files/clean.ply")))
    assert await settle(page) == "ready"
    canvas = page.locator("foto3d-viewer")
    bb = await canvas.bounding_box()
    cx, cy = bb["x"] + bb["width"] / 2, bb["y"] + bb["height"] / 2
    for dx, dy in ((400, 300), (-300, -500)):  # round the side and over the top, then under
        await page.mouse.move(cx, cy)
        await page.mouse.down()
        await page.mouse.move(cx + dx, cy + dy, steps=8)
        await page.mouse.up()
        await page.mouse.move(cx, cy)
        for _ in range(6):
            await page.mouse.wheel(0, 600)  # zoom out as far as the limits allow
        await frames_later(page)
        mask = object_mask(await canvas_rgb(page), BACKGROUND)
        x0, x1, y0, y1 = box(mask)
        assert mask.mean() > 0.02, f"after drag {dx, dy}: the object has (nearly) left the frame"
        assert x0 > 0.01 and x1 < 0.99 and y0 > 0.01 and y1 < 0.99, f"after drag {dx, dy}: {x0, x1, y0, y1}"


async def test_floaters_do_not_shrink_the_object(page: Any, site: Site) -> None:
    radii = {}
    for name in ("clean", "object"):
        await page.goto(site.page_url(tag(src=f"{site.base}/files/{name}.ply")))
        assert await settle(page) == "ready"
        radii[name] = float(await page.evaluate(f"{VIEWER}.bounds.radius"))
    assert radii["object"] / radii["clean"] < 1.15, radii


async def test_every_format_comes_up_the_same_way(page: Any, site: Site) -> None:
    masks = {}
    for name in ("clean.ply", "clean.spz"):
        await page.goto(site.page_url(tag(src=f"{site.base}/files/{name}")))
        assert await settle(page) == "ready"
        masks[name] = object_mask(await canvas_rgb(page), BACKGROUND)
    a, b = masks.values()
    iou = float((a & b).sum() / (a | b).sum())
    assert iou > 0.8, f"the .spz and .ply views differ (IoU {iou:.2f}): one is not upright"


async def test_background_option_is_honoured(page: Any, site: Site) -> None:
    await page.goto(site.page_url(tag(src=f"{site.base}/files/clean.ply", background="#203040")))
    assert await settle(page) == "ready"
    img = await canvas_rgb(page)
    assert tuple(int(v) for v in img[3, 3]) == (32, 48, 64)
    assert object_mask(img, (32, 48, 64)).mean() > 0.05
    config = json.dumps({"background": "rgb(250, 200, 0)"})
    await page.goto(site.page_url(tag(src=f"{site.base}/files/clean.ply", config=config)))
    assert await settle(page) == "ready"
    assert tuple(int(v) for v in (await canvas_rgb(page))[3, 3]) == (250, 200, 0)


@pytest.mark.parametrize(
    "config",
    [
        '{"background": 12, "camera": {"fov": "wide", "azimuth": 30}, "limits": [], "nonsense": true}',
        '{"up": "sideways", "hotspots": [{"label": "no position"}], "auto_rotate": "fast"',  # not JSON
        "/files/missing-config.json",  # 404
    ],
    ids=["invalid-fields", "not-json", "missing"],
)
async def test_a_broken_config_still_shows_the_object(page: Any, site: Site, config: str) -> None:
    errors = collect_console(page)
    await page.goto(site.page_url(tag(src=f"{site.base}/files/clean.ply", config=config)))
    assert await settle(page) == "ready"
    mask = object_mask(await canvas_rgb(page), BACKGROUND)
    assert mask.mean() > 0.05, "blank canvas"
    ours = [e for e in errors if e.startswith("foto3d-viewer:")]
    assert ours, f"no readable console error: {errors}"
    if config.startswith('{"background'):
        text = "\n".join(ours)
        for field in ('"background"', '"camera.fov"', '"limits"', 'unknown field "nonsense"'):
            assert field in text, f"{field} not reported in {ours}"


MODEL_ANSWER: dict[str, Any] = {
    "object_id": "acme-vase-001",
    "name": "Vase",
    "status": "live",
    "model_version": 3,
    "config": {
        "background": "#ffffff",
        "auto_rotate": False,
        "hotspots": [{"position": [0.0, 0.5, 0.0], "label": "Glaze", "description": "hand-painted"}],
    },
    "files": [],  # filled per test with the site's URLs
    "poster_url": None,
    "expires_at": "2099-01-01T00:00:00Z",
}


async def test_model_from_the_api_renders_and_asks_for_formats(page: Any, site: Site) -> None:
    size = (site.files_dir / "clean.spz").stat().st_size
    site.models["acme-vase-001"] = {
        **MODEL_ANSWER,
        "files": [
            {
                "format": "spz",
                "url": f"{site.base}/files/clean.spz",
                "bytes": size,
                "content_type": "application/octet-stream",
                "sha256": "0" * 64,
            },
        ],
    }
    await page.goto(site.page_url(tag(model="acme-vase-001", api=site.base, key="pk_test")))
    assert await settle(page) == "ready"
    assert object_mask(await canvas_rgb(page), (255, 255, 255)).mean() > 0.05
    assert any("key=pk_test" in r and "formats=spz" in r for r in site.requests), site.requests
    hotspot = page.locator("foto3d-viewer .hotspot")
    assert await hotspot.count() == 1 and await hotspot.inner_text() == "Glaze"
    assert await hotspot.is_visible()  # the point is on the object, in front of the camera


async def test_unknown_or_disabled_model_shows_the_not_available_card(page: Any, site: Site) -> None:
    await page.goto(site.page_url(tag(model="acme-gone-404", api=site.base, key="pk_test")))
    assert await settle(page) == "unavailable"
    card = page.locator("foto3d-viewer .card")
    assert await card.is_visible()
    assert "Not available" in await card.inner_text()


async def test_a_corrupt_file_shows_the_card_with_a_readable_error(page: Any, site: Site) -> None:
    errors = collect_console(page)
    await page.goto(site.page_url(tag(src=f"{site.base}/files/broken.spz")))
    assert await settle(page) == "unavailable"
    assert await page.locator("foto3d-viewer .card").is_visible()
    assert any(e.startswith("foto3d-viewer:") for e in errors), errors


async def test_poster_appears_before_the_model(page: Any, site: Site) -> None:
    from foto3d.libs.viewer.png import encode_png

    (site.files_dir / "poster.png").write_bytes(encode_png(np.full((64, 64, 3), 200, np.uint8)))
    await page.goto(
        site.page_url(tag(src=f"{site.base}/files/object.ply", poster=f"{site.base}/files/poster.png"))
    )
    await page.wait_for_function(f"() => {VIEWER}.timings.poster !== undefined")
    assert await settle(page) == "ready"
    # Order, not milliseconds: how soon is the bench's business, and a loaded machine is slow.
    poster_ms, first_frame_ms = await page.evaluate(
        f"() => [{VIEWER}.timings.poster, {VIEWER}.timings.firstFrame]"
    )
    assert poster_ms < first_frame_ms, (poster_ms, first_frame_ms)
    assert not await page.locator("foto3d-viewer .poster").is_visible()


async def test_splats_are_drawn_in_batches_and_a_still_view_costs_one_frame(page: Any, site: Site) -> None:
    # Software WebGL pays per instance and per shader instruction: Spark's one-instance-per-splat
    # draw becomes 128 splats per instance with the viewer's lean shaders. If a Spark upgrade
    # changes the shaders they were cut from, the viewer falls back to Spark's own draw (still
    # correct, far slower); this test says so.
    await page.goto(site.page_url(tag(src=f"{site.base}/files/clean.ply")))
    assert await settle(page) == "ready"
    drawn = await page.evaluate(
        f"""() => {{ const s = {VIEWER}.spark;
        return [s.mode, s.activeSplats, s.geometry.instanceCount, {VIEWER}.framesRendered]; }}"""
    )
    mode, splats, instances, frames = drawn
    assert mode == "lean", drawn
    assert splats > 128 and instances == -(-splats // 128), drawn
    # the first sorted frame is the picture: no fixed run of further frames while nothing moves
    assert frames == 1, drawn
    mask = object_mask(await canvas_rgb(page), BACKGROUND)
    assert float(mask.mean()) > 0.05


@pytest.mark.parametrize("name", ["clean.ply", "object.spz"])
async def test_the_lean_shaders_draw_what_spark_draws(page: Any, site: Site, name: str) -> None:
    # The viewer draws with its own cut of Spark's shaders (src/shaders/); Spark's shaders as
    # shipped, one splat per instance, are the reference. Only the quads' edges move (each ends
    # where the splat's opacity falls below Spark's minAlpha), so a few pixels may differ by a
    # few levels. object.spz has view-dependent colour and floaters.
    await page.goto(site.page_url(tag(src=f"{site.base}/files/{name}")))
    assert await settle(page) == "ready"
    for azimuth, elevation in ((30, 18), (200, 60)):
        await page.evaluate(
            f"([az, el]) => {VIEWER}.applyConfig({{camera: {{azimuth: az, elevation: el}}}})",
            [azimuth, elevation],
        )
        await frames_later(page)
        # the sort for this view is back and drawn (a view change re-sorts, in a worker)
        await page.wait_for_function(
            f"() => {{ const s = {VIEWER}.spark; return !s.sorting && !s.sortDirty && {VIEWER}.idle; }}"
        )
        pictures = {}
        for mode in ("lean", "stock", "batched"):
            await page.evaluate(f"{VIEWER}.spark.use('{mode}')")
            pictures[mode] = (await canvas_rgb(page)).astype(np.int16)
        where = f"{name}, azimuth {azimuth}"
        assert float(object_mask(pictures["stock"].astype(np.uint8), BACKGROUND).mean()) > 0.05, where
        lean = np.abs(pictures["lean"] - pictures["stock"]).max(axis=2)
        assert int(lean.max()) <= 6, f"{where}: lean differs from Spark's draw by up to {lean.max()} levels"
        assert float((lean > 2).mean()) < 0.001, f"{where}: {(lean > 2).sum()} pixels differ by more than 2"
        batched = np.abs(pictures["batched"] - pictures["stock"]).max()
        assert int(batched) <= 1, f"{where}: batching alone changed the picture by {batched} levels"


async def test_an_option_the_lean_shaders_leave_out_switches_to_sparks_shaders(page: Any, site: Site) -> None:
    warnings: list[str] = []
    page.on("console", lambda m: warnings.append(m.text) if m.type == "warning" else None)
    await page.goto(site.page_url(tag(src=f"{site.base}/files/clean.ply")))
    assert await settle(page) == "ready"
    await page.evaluate(
        f"() => {{ {VIEWER}.spark.falloff = 0.5; }}"
    )  # flatter splats: not in the lean shader
    mask = object_mask(await canvas_rgb(page), BACKGROUND)
    assert await page.evaluate(f"{VIEWER}.spark.mode") == "batched"
    assert any("lean shaders leave out" in w for w in warnings), warnings
    assert float(mask.mean()) > 0.05


@pytest.mark.parametrize(
    ("suffix", "degree"),
    [(".ply", 0), (".ply", 2), (".compressed.ply", 1), (".spz", 0), (".spz", 3), (".splat", 0)],
)
async def test_the_sh_degree_is_read_from_the_files_first_bytes(
    page: Any, site: Site, suffix: str, degree: int
) -> None:
    # The pipeline warm-up builds Spark's splat program for the model's SH degree while the
    # file downloads; the degree comes from the download's first 4 KB (a gzip stream cut short,
    # for .spz).
    name = f"sh{degree}{suffix}"
    path = site.files_dir / name
    if not path.exists():
        splat_io.write(synthetic_object(3_000, sh_degree=degree, seed=5), path)
    await page.goto(site.page_url(tag(src=f"{site.base}/files/{name}")))
    await page.wait_for_function(f"() => {VIEWER}?.headShDegree !== undefined")
    assert await page.evaluate(f"{VIEWER}.headShDegree") == degree
    assert await settle(page) == "ready"
