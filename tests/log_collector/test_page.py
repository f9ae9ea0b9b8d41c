"""The Logs page in headless Chromium: filters, colours, links, paging, live tail."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from foto3d.libs.bus.connection import Bus
from foto3d.libs.config import Settings
from foto3d.proto import subjects
from foto3d.services.log_collector.service import LogCollector
from testkit.running import running_services
from testkit.signin import sign_in_browser
from testkit.waiting import eventually
from tests.log_collector.helpers import batch


async def test_logs_page_filters_links_paging_and_live_tail(
    page: Any, settings: Settings, bus: Bus, tmp_path: Path
) -> None:
    async with running_services(settings, ["log_collector"]) as rt:
        (svc,) = rt.services
        assert isinstance(svc, LogCollector) and svc.store is not None
        store = svc.store
        subj = subjects.logs("trainer", "gpu-1")
        t0 = time.time() - 60
        await bus.publish(subj, batch(250, job_id="job-a", object_id="obj-a", message="iteration {i}", ts=t0))
        await bus.publish(
            subj,
            batch(
                2, start_seq=250, job_id="job-b", object_id="obj-b", level=40, ts=t0 + 1,
                message="crash {i}", exc="Traceback (most recent call last):\nValueError: bad <input>",
            ),
        )  # fmt: skip

        async def seeded() -> bool:
            return await store.count() == 252

        await eventually(seeded, what="seed records")

        await sign_in_browser(page, settings, rt.http_url)
        await page.goto(rt.http_url + "/logs")
        rows = page.locator("#log-table tbody tr")
        await page.wait_for_function("document.querySelectorAll('#log-table tbody tr').length === 200")
        assert await page.locator("nav a.active").inner_text() == "Logs"
        # newest first, errors coloured, exception text expandable (and escaped)
        first = rows.first
        assert await first.get_attribute("class") == "row-ERROR"
        assert await first.locator(".lvl-ERROR").inner_text() == "ERROR"
        assert await first.locator("details pre").is_hidden()
        await first.locator("details summary").click()
        assert "ValueError: bad <input>" in await first.locator("details pre").inner_text()
        assert await page.locator(".lvl-INFO").count() == 198
        if os.environ.get("F3D_SCREENSHOTS"):
            await page.screenshot(path=str(Path(os.environ["F3D_SCREENSHOTS"]) / "logs.png"))
        # load older pages further back
        await page.click("#log-older")
        await page.wait_for_function("document.querySelectorAll('#log-table tbody tr').length === 252")
        assert await page.locator("#log-older").is_hidden()

        # a level filter narrows the table and lands in the URL
        await page.select_option("select[name=level]", "error")
        await page.wait_for_function("document.querySelectorAll('#log-table tbody tr').length === 2")
        assert "level=error" in page.url
        # text search
        await page.select_option("select[name=level]", "")
        await page.fill("input[name=q]", "iteration 249")
        await page.click("button[type=submit]")
        await page.wait_for_function("document.querySelectorAll('#log-table tbody tr').length === 1")
        assert "q=iteration+249" in page.url

        # a job link filters the table to that job; the URL can be shared
        await page.fill("input[name=q]", "")
        await page.click("button[type=submit]")
        await page.wait_for_function("document.querySelectorAll('#log-table tbody tr').length === 200")
        await page.locator("a.job-link", has_text="job-b").first.click()
        await page.wait_for_url("**/logs?job=job-b")
        await page.wait_for_function("document.querySelectorAll('#log-table tbody tr').length === 2")
        assert await page.input_value("input[name=job]") == "job-b"

        # live tail: a new record of this job appears without reloading
        await page.check("#log-live")
        await page.wait_for_function("document.getElementById('log-status').textContent.startsWith('live')")
        await eventually(_has_subscriber(svc), what="the page's live stream")
        await bus.publish(subj, batch(1, start_seq=300, job_id="job-b", level=30, message="brand new record"))
        await bus.publish(subj, batch(1, start_seq=301, job_id="job-a", message="other job"))
        await page.wait_for_function("document.querySelectorAll('#log-table tbody tr').length === 3")
        assert await rows.first.locator(".lvl-WARNING").count() == 1
        assert "brand new record" in await rows.first.inner_text()
        assert "live=1" in page.url


def _has_subscriber(svc: LogCollector) -> Any:
    async def check() -> bool:
        return svc.hub.active

    return check
