"""The staff flow in headless Chromium: sign in, approve an object, publish it, see the live link."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from foto3d.libs.auth import UserStore
from foto3d.libs.bus.connection import Bus
from foto3d.libs.config import Settings
from foto3d.libs.viewer.png import encode_png
from testkit.running import running_services
from testkit.signin import sign_in_browser
from testkit.waiting import eventually
from tests.catalog.helpers import PASSWORD, call, make_artifacts, signed_in, train
from tests.trainer.helpers import make_dataset

pytestmark = pytest.mark.browser


async def test_sign_in_approve_publish_and_see_the_live_link(
    settings: Settings, bus: Bus, tmp_path: Path, page: Any
) -> None:
    settings.raw["token_gateway"] = {"port": 0}
    async with running_services(settings, ["catalog", "publisher", "token_gateway"]) as rt:
        await UserStore.in_data_dir(settings.data_dir).add("maria", PASSWORD, "Maria")
        s = await signed_in(rt, settings, "setup")
        async with s:
            await call(s, "POST", "/api/customers", {"slug": "acme", "name": "ACME"})
            _, obj = await call(s, "POST", "/api/objects", {"customer": "acme", "display_name": "Floor lamp"})
            oid = obj["object_id"]
            await train(bus, oid, make_artifacts(tmp_path / "a", extra={"spz": 4000}))

            async def in_review() -> bool:
                _, o = await call(s, "GET", f"/api/objects/{oid}")
                return bool(o["stage"] == "in_review")

            await eventually(in_review, "training events")

        # not signed in: the object page sends us to the sign-in page
        await page.goto(f"{rt.http_url}/objects/{oid}")
        assert "/login" in page.url
        await page.fill('input[name="username"]', "maria")
        await page.fill('input[name="password"]', "wrong password")
        await page.click('button[type="submit"]')
        await page.wait_for_selector(".login-error")
        await page.fill('input[name="username"]', "maria")
        await page.fill('input[name="password"]', PASSWORD)
        await page.click('button[type="submit"]')
        await page.wait_for_url(f"**/objects/{oid}")
        assert await page.text_content(".signed-in .user") == "maria"

        # approving without the checklist is refused with the reason on the page
        review = page.locator("form.review")
        await review.locator('button[value="approved"]').click()
        await page.wait_for_selector("form.review .msg.error")
        assert "checklist" in (await review.locator(".msg").text_content() or "")
        for name in ("training_quality", "alignment", "manual_adjustments"):
            await review.locator(f'input[name="{name}"]').check()
        await review.locator('textarea[name="comment"]').fill("sharp, centred")
        await review.locator('button[value="approved"]').click()
        await page.wait_for_selector("button.publish-btn")
        assert "approved" in ((await page.text_content(".timeline")) or "")

        await page.click("button.publish-btn")
        link = page.locator("a.live-link")
        await link.wait_for()
        # the live link opens the token gateway's staff page of the live model
        assert await link.get_attribute("href") == f"/customers/models/{oid}"
        # every published address staff are shown answers: the preview, each file, live_url
        await page.wait_for_function(
            "() => { const i = document.querySelector('img.preview'); return i && i.complete; }"
        )
        assert await page.locator("img.preview").evaluate("img => img.naturalWidth") > 0
        hrefs = await page.locator("table.files a").evaluate_all("(as) => as.map((a) => a.href)")
        assert len(hrefs) == 4, hrefs  # ply, spz, thumbnail, viewer.json
        for href in hrefs:
            got = await page.request.get(href)
            assert got.ok, f"{href} -> {got.status}"
            key = href.split("/customers/published/", 1)[1]
            assert await got.body() == (settings.data_dir / "published" / key).read_bytes()
        shown = await (await page.request.get(f"{rt.http_url}/api/objects/{oid}")).json()
        assert shown["live_url"] == f"{rt.http_url}/customers/published/models/acme/{oid}/v1/viewer.json"
        live = await page.request.get(shown["live_url"])
        assert live.ok and json.loads(await live.body())["object_id"] == oid
        csv_text = await (await page.request.get(f"{rt.http_url}/api/objects.csv")).text()
        assert shown["live_url"] in csv_text
        # ... and only to staff
        anonymous = await page.context.browser.new_context()
        try:
            refused = await anonymous.request.get(shown["live_url"], max_redirects=0)
            assert refused.status == 302 and "/login" in refused.headers["location"]
        finally:
            await anonymous.close()
        timeline = (await page.text_content(".timeline")) or ""
        assert "published v1" in timeline and "maria" in timeline
        await page.screenshot(path=str(tmp_path / "object.png"), full_page=True)

        # the table and the board show it
        await page.goto(f"{rt.http_url}/objects?customer=acme")
        assert await page.locator("table.objects tbody tr").count() == 1
        assert "Published" in ((await page.text_content("table.objects")) or "")
        await page.screenshot(path=str(tmp_path / "objects.png"), full_page=True)
        # onboarding from the page, with a reference image upload
        ref = tmp_path / "ref.png"
        ref.write_bytes(encode_png(np.full((16, 24, 3), 200, np.uint8)))
        form = page.locator('form[data-post="/api/objects"]')
        await form.locator('input[name="display_name"]').fill("Floor lamp")
        await form.locator('input[type="file"]').set_input_files(str(ref))
        await form.locator('button[type="submit"]').click()
        await page.wait_for_url("**/objects/acme-floor-lamp-002")
        await page.wait_for_function(
            "() => { const i = document.querySelector('img.preview'); return i && i.complete && i.naturalWidth; }"
        )
        assert await page.locator("img.preview").evaluate("img => img.naturalWidth") == 24

        await page.goto(f"{rt.http_url}/board")
        assert await page.text_content('.board [data-stage="published"]') == "1"
        await page.screenshot(path=str(tmp_path / "board.png"), full_page=True)


async def test_capture_submit_and_approval_from_the_object_page(
    settings: Settings, bus: Bus, tmp_path: Path, page: Any
) -> None:
    """The object page takes an object from registered to training without the CLI, offers a
    live status only once there is something live, and shows who approved and when."""
    async with running_services(settings, ["catalog", "queue"]) as rt:
        s = await signed_in(rt, settings, "maria")
        async with s:
            await call(s, "POST", "/api/customers", {"slug": "acme", "name": "ACME"})
            _, obj = await call(s, "POST", "/api/objects", {"customer": "acme", "display_name": "Stool"})
        oid = obj["object_id"]
        await sign_in_browser(page, settings, rt.http_url)
        await page.goto(f"{rt.http_url}/objects/{oid}")
        assert await page.locator('form[data-post$="/status"]').count() == 0  # nothing live to set
        assert await page.locator("form.submit").count() == 0  # nothing captured to train
        dataset = make_dataset(tmp_path / "stool-photos")
        capture = page.locator("form.capture")
        await capture.locator('input[name="dataset"]').fill(str(dataset))
        await capture.locator('input[name="photos"]').fill("3")
        await capture.locator('input[name="rig"]').fill("turntable-1")
        await capture.locator('button[type="submit"]').click()
        await page.locator("form.submit, form.capture .msg.error").first.wait_for()
        assert await capture.locator(".msg.error").count() == 0, await capture.locator(".msg").inner_text()
        assert "captured" in (await page.locator(".cards").inner_text()).lower()
        await page.locator("button.submit-btn").click()
        await page.locator("form.submit").wait_for(state="detached")
        timeline = await page.locator(".timeline").inner_text()
        assert "captured" in timeline and "submitted" in timeline, timeline
        row = await (await page.request.get(f"{rt.http_url}/api/objects/{oid}")).json()
        assert row["job_id"] and row["dataset"] == str(dataset)

        metrics = {"gaussians_raw": 237500.0, "gaussians": 118750.0, "reduced": 1.0, "bytes_ply": 237500.0,
                   "bytes_compressed_ply": 61440.0, "reduced_psnr": 41.234, "reduced_ssim": 0.99123}  # fmt: skip
        artifacts = make_artifacts(tmp_path / "a")
        await train(bus, oid, artifacts, job_id=row["job_id"], dataset=str(dataset), metrics=metrics)

        async def in_review() -> bool:
            got = await (await page.request.get(f"{rt.http_url}/api/objects/{oid}")).json()
            return bool(got["stage"] == "in_review")

        await eventually(in_review, "the training events")
        await page.reload()
        assert await page.locator('form[data-post$="/status"]').count() == 0  # trained, not published
        # the review's figures in words and units
        figures = [
            tuple(r.split("\t"))
            for r in await page.locator("table.figures tr").evaluate_all(
                "(rs) => rs.map((r) => [...r.cells].map((c) => c.innerText).join('\\t'))"
            )
        ]
        assert figures == [
            ("Gaussians after reduction", "118,750"),
            ("Gaussians as trained", "237,500"),
            ("Reduced", "yes"),
            ("Reduced copy against the full one: PSNR", "41.2 dB"),
            ("Reduced copy against the full one: SSIM", "0.991"),
            ("Size, compressed .ply", "60.0 KiB"),
            ("Size, .ply", "231.9 KiB"),
        ], figures
        review = page.locator("form.review")
        for name in ("training_quality", "alignment", "manual_adjustments"):
            await review.locator(f'input[name="{name}"]').check()
        await review.locator('textarea[name="comment"]').fill("clean edges")
        await review.locator('button[value="approved"]').click()
        done = page.locator(".approved-review")
        await done.wait_for()
        text = await done.locator(".approved-by").inner_text()
        assert re.search(r"Approved by staff at \d{4}-\d\d-\d\d \d\d:\d\d UTC", text), text
        assert await done.locator("input:checked").count() == 3
        assert "clean edges" in await done.inner_text()


async def test_first_customer_hint_and_confirmation(settings: Settings, page: Any) -> None:
    """Before the first customer the register form says what to do first; adding one confirms it
    and offers it in the register form."""
    async with running_services(settings, ["catalog"]) as rt:
        await sign_in_browser(page, settings, rt.http_url)
        await page.goto(f"{rt.http_url}/objects")
        register = page.locator('form[data-post="/api/objects"]')
        assert "No customers yet" in await register.locator(".hint").inner_text()
        assert await register.locator('button[type="submit"]').is_disabled()
        add = page.locator("form.add-customer")
        await add.locator('input[name="slug"]').fill("acme")
        await add.locator('input[name="name"]').fill("Acme Furniture")
        await add.locator('button[type="submit"]').click()
        done = page.locator('.msg.ok[role="status"]')
        await done.wait_for()
        assert await done.inner_text() == "Added customer acme (Acme Furniture)."
        assert await register.locator(".hint").count() == 0
        assert await register.locator('select[name="customer"] option').all_inner_texts() == [
            "acme — Acme Furniture"
        ]
