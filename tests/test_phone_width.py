"""Every dashboard page at phone width (420 px) in headless Chromium: nothing wider than the screen.

A page wider than its viewport means sideways scrolling, a nav cut off, tables clipped; a log
row hundreds of pixels tall means one record fills the screen. Both are measured, not eyeballed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from foto3d.libs.bus.connection import Bus
from foto3d.libs.config import Settings
from foto3d.proto import subjects
from foto3d.services.catalog.service import CatalogService
from testkit.running import running_services
from testkit.signin import sign_in_browser
from testkit.waiting import eventually
from tests.catalog.helpers import make_artifacts, train
from tests.log_collector.helpers import batch

PHONE = {"width": 420, "height": 860}
SERVICES = ["catalog", "queue", "log_collector", "notifier", "token_gateway"]
LONG = (
    "Saving checkpoint to /data/trainer/work/acme-very-long-object-name-001/outputs/splatfacto/"
    "2026-11-26_101010/nerfstudio_models/step-000029999.ckpt after {i} iterations with loss 0.0123"
)

OFFENDERS = """() => [...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right > 421)
  .slice(0, 12).map((e) => `${e.tagName}.${e.className}#${e.id} r=${Math.round(e.getBoundingClientRect().right)} w=${Math.round(e.getBoundingClientRect().width)}`)"""
WIDTH = "() => Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)"
# Navigation entries not wholly on the screen (cut off, or scrolled out of a clipped bar).
NAV_HIDDEN = """() => [...document.querySelectorAll('.topbar nav a')].filter((a) => {
  const r = a.getBoundingClientRect(), n = a.parentElement.getBoundingClientRect();
  return r.left < 0 || r.right > innerWidth || r.left < n.left - 0.5 || r.right > n.right + 0.5;
}).map((a) => a.textContent)"""


async def test_every_dashboard_page_fits_a_phone(
    page: Any, settings: Settings, bus: Bus, tmp_path: Path
) -> None:
    await page.set_viewport_size(PHONE)
    async with running_services(settings, SERVICES) as rt:
        base = rt.http_url
        await sign_in_browser(page, settings, base)
        catalog = next(s for s in rt.services if isinstance(s, CatalogService))
        await catalog.parts.catalog.add_customer("acme", "Acme Furniture", "staff")
        obj = await catalog.parts.catalog.register("acme", "A rather long oak dining chair name", "staff")
        oid = obj.object_id
        job_id = await train(bus, oid, make_artifacts(tmp_path / "a"))
        await bus.publish(
            subjects.logs("trainer", "gpu-1"), batch(30, job_id=job_id, object_id=oid, message=LONG)
        )

        async def in_review() -> bool:
            row = await catalog.store.get(oid)
            return row is not None and row.stage == "in_review"

        await eventually(in_review, "the trained job in the catalog")
        await catalog.parts.notes.write(
            oid, "Legs needed markers; " + LONG, ["material:wood", "finish:matte"], [], False, "staff"
        )

        pages = [
            "/objects", f"/objects/{oid}", "/board", "/jobs", f"/jobs/{job_id}", "/logs",
            f"/logs?job={job_id}", "/status", "/alerts", "/customers/access", "/notes?q=markers",
        ]  # fmt: skip
        too_wide: dict[str, tuple[int, list[str]]] = {}
        nav_hidden: dict[str, list[str]] = {}
        for path in pages:
            await page.goto(base + path)
            await page.wait_for_load_state("networkidle")
            width = await page.evaluate(WIDTH)
            if width > PHONE["width"]:
                too_wide[path] = (width, await page.evaluate(OFFENDERS))
            if hidden := await page.evaluate(NAV_HIDDEN):
                nav_hidden[path] = hidden
        assert not too_wide, f"wider than {PHONE['width']} px: {too_wide}"
        # every menu entry is on the screen (it was cut at "Obj…" with no sign that it scrolled)
        assert not nav_hidden, f"menu entries off the screen: {nav_hidden}"
        nav = await page.locator(".topbar nav a").all_inner_texts()
        assert "Customers' usage" in nav and "Customers' access" in nav, nav

        # the staff forms are laid out, not bare inline inputs: the credential form and "Adjust"
        await page.goto(base + "/customers/access")
        label = page.locator("form.stack label").first
        assert await label.evaluate("(l) => getComputedStyle(l).flexDirection") == "column"
        await page.goto(f"{base}/objects/{oid}")
        adjust = page.locator("form.review-adjust")
        assert await adjust.evaluate("(f) => getComputedStyle(f).display") == "grid"
        assert (
            await adjust.locator("label").first.evaluate("(l) => getComputedStyle(l).flexDirection")
            == "column"
        )

        # The object page: trained files are downloads, not file:/// text; a never-published
        # object is offered no live status at all (nothing of it is live).
        await page.goto(f"{base}/objects/{oid}")
        assert "file://" not in await page.locator("main").inner_text()
        link = page.locator('table.files a[download="model.ply"]')
        href = await link.get_attribute("href")
        assert href
        got = await page.request.get(base + href)
        assert got.ok and len(await got.body()) == (tmp_path / "a" / "model.ply").stat().st_size
        assert await page.locator('form[data-post$="/status"]').count() == 0

        # Log rows stay readable: a ~190-character message wraps to a few lines under its time,
        # level and source (about 140 px), not a column of single words (it was 380 px).
        await page.goto(f"{base}/logs?job={job_id}")
        rows = page.locator("#log-table tbody tr")
        await rows.nth(29).wait_for(timeout=10000)
        heights = await rows.evaluate_all("(rs) => rs.map((r) => r.getBoundingClientRect().height)")
        assert max(heights) <= 160, f"log rows up to {max(heights):.0f} px tall"
