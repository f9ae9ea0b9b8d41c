"""Cross-site request forgery is refused, in a real browser and from a real HTTP client; the
session cookie is Secure whenever the dashboard is reached over HTTPS (directly or through a
trusted proxy), SameSite=Strict always."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from aiohttp import web

from foto3d.libs.auth import UserStore
from foto3d.libs.config import Settings
from testkit.running import running_services
from testkit.site import local_site

RIGHT = "correct horse battery"


@asynccontextmanager
async def evil_site(host: str, target: str) -> AsyncIterator[str]:
    """Another origin serving a page that posts a form to ``target`` as soon as it loads."""

    async def page(_: web.Request) -> web.Response:
        return web.Response(
            text=f"""<!doctype html><form id="f" method="post" action="{target}">
<input type="hidden" name="keep" value=""></form><script>document.getElementById('f').submit()</script>""",
            content_type="text/html",
        )

    app = web.Application()
    app.router.add_get("/", page)
    async with local_site(app, "127.0.0.1") as port:
        yield f"http://{host}:{port}/"


async def sign_in_with_the_form(page: Any, base: str, name: str = "ana") -> None:
    await page.goto(base + "/login?next=/account")
    await page.fill("input[name=username]", name)
    await page.fill("input[name=password]", RIGHT)
    await page.click("button[type=submit]")
    await page.wait_for_url("**/account")


async def test_a_cross_site_form_post_is_refused_in_the_browser(page: Any, settings: Settings) -> None:
    await UserStore.in_data_dir(settings.data_dir).add("ana", RIGHT)
    async with running_services(settings, ["queue"]) as rt:
        # The real sign-in form works (the browser sends our own Origin).
        await sign_in_with_the_form(page, rt.http_url)
        assert await page.locator("#sessions tbody tr").count() == 1
        target = rt.http_url + "/account/sessions/end"  # "sign out everywhere"
        # A page on another port of the same host is the same *site*: SameSite=Strict sends the
        # cookie along, and only the origin check stands in the way.
        for host in ("127.0.0.1", "localhost"):
            async with evil_site(host, target) as evil:
                async with page.expect_response(target) as answer:
                    await page.goto(evil)
                response = await answer.value
                assert response.status == 403, (host, response.status)
                assert "cross-site request refused" in await response.text()
        # Still signed in: the forged post ended nothing.
        await page.goto(rt.http_url + "/account")
        assert await page.locator("#sessions tbody tr").count() == 1
        # The same form from the dashboard's own page does its job.
        await page.locator("form[action='/account/sessions/end'] button", has_text="everywhere").last.click()
        await page.wait_for_url("**/login")


async def test_state_changes_need_our_own_origin_and_cookies_are_secure_over_https(
    settings: Settings,
) -> None:
    await UserStore.in_data_dir(settings.data_dir).add("ana", RIGHT)
    async with (
        running_services(settings, ["queue"]) as rt,
        aiohttp.ClientSession(base_url=rt.http_url) as http,
    ):
        own = rt.http_url
        form = {"username": "ana", "password": RIGHT}
        for headers in (
            {"Origin": "http://evil.example"},
            {"Origin": "null"},
            {"Sec-Fetch-Site": "cross-site"},
        ):
            async with http.post("/login", data=form, headers=headers, allow_redirects=False) as r:
                assert r.status == 403, headers
            async with http.post("/api/jobs/x1/cancel", json={}, headers=headers) as r:
                assert r.status == 403, headers
        # Our own pages, and clients that are no browser (no Origin at all), go through.
        for headers in ({"Origin": own}, {"Sec-Fetch-Site": "same-origin"}, {}):
            async with http.post("/login", data=form, headers=headers, allow_redirects=False) as r:
                assert r.status == 302, headers
                cookie = r.headers["Set-Cookie"]
                assert "SameSite=Strict" in cookie and "HttpOnly" in cookie and "Secure" not in cookie
        # Over HTTPS through the trusted proxy (this host): Secure, and the proxy's origin is ours.
        proxied = {
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "dash.example",
            "Origin": "https://dash.example",
        }
        async with http.post("/login", data=form, headers=proxied, allow_redirects=False) as r:
            assert r.status == 302
            assert "Secure" in r.headers["Set-Cookie"] and "SameSite=Strict" in r.headers["Set-Cookie"]
