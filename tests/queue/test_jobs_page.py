"""The jobs page in headless Chromium: a running job's progress appears live."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from foto3d.libs.bus.connection import Bus
from foto3d.libs.config import Settings
from testkit.running import running_services
from testkit.signin import sign_in_browser, staff_cookie
from testkit.trainer_stub import StubTrainer
from tests.queue.test_queue import submit


async def test_jobs_page_shows_live_progress(page: Any, bus: Bus, settings: Settings, dataset: Path) -> None:
    async with running_services(settings, ["queue"]) as rt:
        await sign_in_browser(page, settings, rt.http_url)
        await page.goto(rt.http_url + "/jobs")
        assert await page.title() == "Jobs · foto3d"
        trainer = StubTrainer(bus, "gpu-box-1", work_s=4.0)
        trainer.start()
        try:
            reply = await submit(bus, "acme-chair-001", dataset)
            row = page.locator(f'tr[data-job="{reply.job_id}"]')
            # No reload: the page polls and the row turns running with the trainer's progress.
            await row.locator(".badge.running").wait_for(timeout=5000)
            assert "train 1/2" in await row.locator(".progress-cell").inner_text()
            assert await row.locator("td.mono").nth(2).inner_text() == "gpu-box-1"
            await row.locator(".badge.succeeded").wait_for(timeout=8000)
            # The object id links to its catalog page; the duration is the time it ran (work_s=4).
            object_link = row.locator('a[href="/objects/acme-chair-001"]')
            assert await object_link.inner_text() == "acme-chair-001"
            ran = (await row.locator("td.duration").inner_text()).strip()
            assert ran.endswith(" s") and 3 <= int(ran.removesuffix(" s")) <= 10, ran
            await row.locator(f'a[href="/jobs/{reply.job_id}"]').click()
            await page.wait_for_url(f"**/jobs/{reply.job_id}")
            timeline = page.locator("#timeline tbody tr")
            await timeline.nth(2).wait_for(timeout=5000)
            assert "succeeded" in await timeline.nth(2).inner_text()
            href = await page.locator("#logs-link").get_attribute("href")
            assert href and href.endswith(f"/logs?job={reply.job_id}")
            await page.screenshot(path=str(Path(settings.data_dir) / "job.png"))
        finally:
            await trainer.stop()


async def test_jobs_page_on_a_fresh_install_shows_zero_counts(page: Any, settings: Settings) -> None:
    """No job yet: the counts read 0 and the table says so (the reply once omitted empty counts)."""
    async with running_services(settings, ["queue"]) as rt:
        await sign_in_browser(page, settings, rt.http_url)
        await page.goto(rt.http_url + "/jobs")
        # The first refresh either fills the page or says why it is "not updating".
        await page.wait_for_function("document.getElementById('leader').textContent !== ''")
        assert "not updating" not in await page.locator("#leader").inner_text()
        assert await page.locator("#jobs-table td.empty").inner_text() == "No jobs match."
        values = await page.locator("#job-counts .card .value").all_inner_texts()
        assert values == ["0"] * 6, values


async def test_a_job_cancelled_on_the_page_records_the_person(
    bus: Bus, settings: Settings, dataset: Path
) -> None:
    """The jobs page's cancel records the signed-in staff account, as every page action does."""
    async with running_services(settings, ["queue"]) as rt:
        reply = await submit(bus, "acme-chair-001", dataset)
        async with aiohttp.ClientSession(cookies=await staff_cookie(settings, "maria")) as s:
            async with s.post(f"{rt.http_url}/api/jobs/{reply.job_id}/cancel") as r:
                assert r.status == 200, await r.text()
            async with s.get(f"{rt.http_url}/api/jobs/{reply.job_id}") as r:
                detail = await r.json()
    texts = [e["text"] for e in detail["timeline"]]
    assert any(t.startswith("cancelled by maria") for t in texts), texts


async def test_a_failed_job_page_asks_for_a_capture_note(
    page: Any, bus: Bus, settings: Settings, dataset: Path
) -> None:
    """A failure someone understood becomes a note: the job's page links to its object's notes."""
    async with running_services(settings, ["queue"]) as rt:
        await sign_in_browser(page, settings, rt.http_url)
        trainer = StubTrainer(bus, "gpu-box-1", mode="fail")
        trainer.start()
        try:
            reply = await submit(bus, "acme-chair-001", dataset)
            await page.goto(f"{rt.http_url}/jobs/{reply.job_id}")
            note = page.locator("#job-note")
            await note.wait_for(state="visible", timeout=15000)
            href = await page.locator("#job-note-link").get_attribute("href")
            assert href == "/objects/acme-chair-001#notes"
        finally:
            await trainer.stop()
