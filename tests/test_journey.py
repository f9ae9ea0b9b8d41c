"""The whole journey as a new person walks it, in headless Chromium, at desk and phone width.

Sign in -> add a customer -> register an object with a reference image -> mark it captured ->
submit it for training (a real trainer process, fake nerfstudio on PATH) -> review it in 3D ->
approve -> publish -> the live model's page -> issue a publishable key -> a shop page on another
origin shows the model with the snippet staff copied -> disable it -> the shop shows the card.

Every step fails the test on a console error, a failed request, a page wider than the screen or
a character drawn as a missing-glyph box; the last step allows only the refusal it provokes.
"""

from __future__ import annotations

import html
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp import web
from playwright.async_api import TimeoutError as PlaywrightTimeout

from foto3d.libs.auth import UserStore
from foto3d.libs.config import Settings
from foto3d.libs.viewer.png import encode_png
from testkit.running import running_services
from testkit.site import local_site
from testkit.waiting import eventually
from tests.browser import MISSING_GLYPHS, SIDEWAYS, PageWatch
from tests.test_e2e import start_trainer
from tests.trainer.helpers import fake_env, make_dataset

pytestmark = [pytest.mark.browser, pytest.mark.timeout(420)]
SERVICES = ["catalog", "queue", "log_collector", "notifier", "publisher", "token_gateway"]
PASSWORD = "a long enough passphrase"
VIEWER = "document.querySelector('foto3d-viewer')"


@asynccontextmanager
async def shop_site() -> AsyncIterator[tuple[str, dict[str, str]]]:
    """A customer's shop on its own origin: ``/product`` holds whatever snippet is put in ``pages``."""
    pages: dict[str, str] = {}

    async def product(_request: web.Request) -> web.Response:
        body = (
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<link rel="icon" href="data:,"><title>Desk</title></head>'
            f'<body style="margin:0;font-family:sans-serif"><h1>Desk</h1>{pages.get("snippet", "")}</body></html>'
        )
        return web.Response(text=body, content_type="text/html")

    app = web.Application()
    app.router.add_get("/product", product)
    async with local_site(app, "127.0.0.1") as port:
        yield f"http://127.0.0.1:{port}", pages


async def look(page: Any, watch: PageWatch, where: str, settle: bool = True) -> None:
    """What a person would notice on the page as it is now (after its requests have settled;
    ``settle=False`` where a refused fetch whose body the page never reads stays open)."""
    try:
        await page.wait_for_load_state("networkidle" if settle else "load", timeout=15_000)
    except PlaywrightTimeout:
        raise AssertionError(f"{where}: requests still open: {list(watch.open.values())[:10]}") from None
    wider = await page.evaluate(SIDEWAYS)
    assert wider <= 0, f"{where}: the page scrolls sideways by {wider} px"
    glyphs = await page.evaluate(MISSING_GLYPHS, [])
    assert glyphs["reference_ink"] > 0, "the missing-glyph reference drew nothing: the check proves nothing"
    missing = glyphs["missing"]
    assert not missing, f"{where}: characters drawn as missing-glyph boxes: {missing}"
    assert not watch.problems, f"{where}: {watch.problems}"


async def test_the_missing_glyph_check_sees_a_box(page: Any) -> None:
    """The check itself: a codepoint no font here has is found, a common one is not."""
    await page.set_content("<p>Caf\u00e9 \u2192 <span>\U000f0001</span></p>")
    got = await page.evaluate(MISSING_GLYPHS, [])
    assert got["missing"] == ["U+F0001 in <span>"], got
    # inside a shadow root too (the viewer draws its controls there)
    await page.evaluate(
        "() => { const h = document.body.appendChild(document.createElement('div'));"
        " h.attachShadow({mode: 'open'}).innerHTML = '<button>\u26f6</button>'; }"
    )
    got = await page.evaluate(MISSING_GLYPHS, [])
    assert "U+26F6 in div shadow <button>" in got["missing"], got


@pytest.mark.parametrize("width", [1280, 420])
async def test_the_whole_journey(
    settings: Settings, tmp_path: Path, page: Any, width: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.raw["token_gateway"] = {"port": 0}
    for var in ("FOTO3D_SMTP_URL", "FOTO3D_ARTIFACT_STORE", "FOTO3D_ALERT_TO", "FOTO3D_ALERT_WEBHOOK"):
        monkeypatch.delenv(var, raising=False)
    await page.set_viewport_size({"width": width, "height": 860})
    watch = PageWatch(page)
    trainer: subprocess.Popen[bytes] | None = None
    await UserStore.in_data_dir(settings.data_dir).add("maria", PASSWORD, "Maria")
    try:
        async with running_services(settings, SERVICES) as rt, shop_site() as (shop, shop_pages):
            base = rt.http_url
            gateway = next(s for s in rt.services if s.name == "token_gateway").health().extra["listener"]

            watch.at("sign in")
            await page.goto(f"{base}/objects")
            await page.fill('input[name="username"]', "maria")
            await page.fill('input[name="password"]', PASSWORD)
            await page.click('button[type="submit"]')
            await page.wait_for_url("**/objects")
            await look(page, watch, "objects, empty")

            watch.at("customer")
            add = page.locator("form.add-customer")
            await add.locator('input[name="slug"]').fill("acme")
            await add.locator('input[name="name"]').fill("Acme Furniture")
            await add.locator('button[type="submit"]').click()
            await page.locator('.msg.ok[role="status"]').wait_for()
            await look(page, watch, "customer added")

            watch.at("object")
            ref = tmp_path / "desk.png"
            ref.write_bytes(encode_png(np.full((24, 32, 3), 180, np.uint8)))
            register = page.locator('form[data-post="/api/objects"]')
            await register.locator('input[name="display_name"]').fill("Standing desk")
            await register.locator('input[type="file"]').set_input_files(str(ref))
            await register.locator('button[type="submit"]').click()
            await page.wait_for_url("**/objects/acme-standing-desk-001")
            oid = "acme-standing-desk-001"
            await page.wait_for_function("() => document.querySelector('img.preview')?.naturalWidth === 32")
            await look(page, watch, "object registered")

            watch.at("captured")
            dataset = make_dataset(tmp_path / "desk-photos")
            capture = page.locator("form.capture")
            await capture.locator('input[name="dataset"]').fill(str(dataset))
            await capture.locator('input[name="photos"]').fill("3")
            await capture.locator('button[type="submit"]').click()
            await page.locator("form.submit").wait_for()
            await look(page, watch, "captured")

            watch.at("training")
            assert settings.nats_urls
            trainer = start_trainer(settings.nats_urls[0], settings.data_dir, fake_env())
            await page.locator("button.submit-btn").click()
            await page.locator("form.submit").wait_for(state="detached")

            async def trained() -> bool:
                got = await (await page.request.get(f"{base}/api/objects/{oid}")).json()
                return bool(got["stage"] == "in_review")

            await eventually(trained, "training with the fake nerfstudio", timeout=90)
            await page.reload()
            await look(page, watch, "in review")

            watch.at("review in 3D")
            await page.wait_for_function(
                "() => [...document.querySelectorAll('.review3d foto3d-viewer')]"
                ".every((v) => v.state === 'ready')",
                timeout=120_000,
            )
            await look(page, watch, "review in 3D")

            watch.at("approve")
            review = page.locator("form.review")
            for name in ("training_quality", "alignment", "manual_adjustments"):
                await review.locator(f'input[name="{name}"]').check()
            await review.locator('button[value="approved"]').click()
            await page.locator(".approved-review").wait_for()
            assert "Approved by maria at" in await page.locator(".approved-by").inner_text()
            await look(page, watch, "approved")

            watch.at("publish")
            await page.click("button.publish-btn")
            await page.locator("a.live-link").wait_for()
            await page.wait_for_function("() => document.querySelector('img.preview')?.naturalWidth > 0")
            await look(page, watch, "published")

            watch.at("live model page")
            await page.goto(base + (await page.locator("a.live-link").get_attribute("href")))
            await page.wait_for_function(f"() => {VIEWER}?.state === 'ready'", timeout=120_000)
            snippet = next(t for t in await page.locator("pre.snippet").all_inner_texts() if "<script" in t)
            await look(page, watch, "live model page")

            watch.at("publishable key")
            await page.goto(f"{base}/customers/access")
            issue = page.locator('form[action="/customers/access/issue"]')
            await issue.locator('input[name="customer"]').fill("acme")
            await issue.locator('select[name="kind"]').select_option("publishable")
            await issue.locator('textarea[name="origins"]').fill(shop)
            await issue.locator('button[type="submit"]').click()
            key = (await page.locator("#new-token code").inner_text()).strip()
            assert key.startswith("pk_"), key
            await look(page, watch, "key issued")

            watch.at("shop page")
            shop_pages["snippet"] = snippet.replace("pk_…", html.escape(key))
            await page.goto(f"{shop}/product")
            await page.wait_for_function(f"() => {VIEWER}?.state === 'ready'", timeout=120_000)
            assert gateway in snippet and base not in snippet
            await look(page, watch, "shop page")

            watch.at("disable")
            await page.goto(f"{base}/objects/{oid}")
            status = page.locator('form[data-post$="/status"]')
            await status.locator('select[name="status"]').select_option("disabled")
            await status.locator('input[name="reason"]').fill("subscription ended")
            await status.locator('button[type="submit"]').click()
            await page.wait_for_function("() => /disabled/i.test(document.querySelector('.cards').innerText)")
            await look(page, watch, "disabled")

            # the shop's viewer is refused now: the card, and only that refusal in the console
            watch.at("shop page, disabled", allow=(f"/v1/models/{oid}", "not available", "status of 404"))

            async def card() -> bool:
                await page.goto(f"{shop}/product")
                await page.wait_for_function(
                    f"() => ['ready', 'unavailable'].includes({VIEWER}?.state)", timeout=120_000
                )
                return bool(await page.evaluate(f"{VIEWER}.state") == "unavailable")

            await eventually(card, "the disabled model to be refused at the shop")
            shown = await page.evaluate(
                f"(() => {{ const c = {VIEWER}.shadowRoot.querySelector('.card'); return c.hidden ? '' : c.innerText; }})()"
            )
            assert "Not available" in shown, shown
            # (the viewer does not read the refusal's body, so Chromium keeps that fetch open)
            await look(page, watch, "shop page, disabled", settle=False)
    finally:
        if trainer is not None:
            if trainer.poll() is None:
                os.killpg(trainer.pid, signal.SIGTERM)
            try:
                trainer.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(trainer.pid, signal.SIGKILL)
                trainer.wait()
            if trainer.stderr is not None:
                trainer.stderr.close()
