"""Stronger sign-in where it matters: one-time codes (enrolled in the browser, then required),
admins made to use them when configured, weak passwords refused, and the generated first
admin password changed at the first sign-in."""

from __future__ import annotations

import re
import time
from typing import Any

import aiohttp
import pytest

from foto3d.libs.auth import UserError, UserStore
from foto3d.libs.auth.totp import secret_bytes, totp
from foto3d.libs.config import Settings
from testkit.running import running_services

RIGHT = "correct horse battery"


async def sign_in(page: Any, base: str, name: str, password: str, code: str = "") -> str:
    """Submit the sign-in form; the path it ends on (the target, or /login with an error)."""
    await page.goto(base + "/login?next=/account")
    await page.fill("input[name=username]", name)
    await page.fill("input[name=password]", password)
    await page.fill("input[name=code]", code)
    await page.click("button[type=submit]")
    await page.wait_for_load_state()
    return str(page.url).removeprefix(base).split("?")[0]


async def test_totp_enrolment_and_sign_in_in_the_browser(page: Any, settings: Settings) -> None:
    await UserStore.in_data_dir(settings.data_dir).add("ana", RIGHT)
    async with running_services(settings, ["queue"]) as rt:
        base = rt.http_url
        assert await sign_in(page, base, "ana", RIGHT) == "/account"
        await page.click("#totp button")
        secret = (await page.inner_text("#totp-secret")).strip()
        assert (await page.get_attribute("#totp-uri", "href") or "").startswith(
            "otpauth://totp/foto3d%3Aana?"
        )
        await page.fill("#totp input[name=current]", RIGHT)
        wrong = "000000" if totp(secret_bytes(secret), time.time()) != "000000" else "111111"
        await page.fill("#totp input[name=code]", wrong)
        await page.click("#totp button")
        assert "not right" in await page.inner_text("main")  # a wrong code turns nothing on
        await page.fill("#totp input[name=current]", RIGHT)
        await page.fill("#totp input[name=code]", totp(secret_bytes(secret), time.time()))
        await page.click("#totp button")
        await page.wait_for_selector("text=One-time codes are on")
        await page.goto(base + "/logout")
        # From now on the password alone is not enough, and the answer does not say why.
        assert await sign_in(page, base, "ana", RIGHT) == "/login"
        assert "Wrong user name, password or code." in await page.inner_text(".login-error")
        # The code that turned it on is spent; the app's next code (one step ahead is accepted,
        # for clocks that drift) signs in.
        code = totp(secret_bytes(secret), time.time() + 30)
        assert await sign_in(page, base, "ana", RIGHT, code) == "/account"
        await page.goto(base + "/logout")
        # The same code twice is refused (seen over a shoulder, it is already spent).
        assert await sign_in(page, base, "ana", RIGHT, code) == "/login"


async def test_admins_must_set_up_codes_when_configured(settings: Settings) -> None:
    settings.raw["auth"] = {"admin_totp_required": True}
    users = UserStore.in_data_dir(settings.data_dir)
    await users.add("root", RIGHT, admin=True)
    await users.add("ana", RIGHT)
    async with running_services(settings, ["queue"]) as rt:
        for name, allowed in (("ana", True), ("root", False)):
            jar = aiohttp.CookieJar(unsafe=True)
            async with aiohttp.ClientSession(base_url=rt.http_url, cookie_jar=jar) as http:
                async with http.post(
                    "/login", data={"username": name, "password": RIGHT}, allow_redirects=False
                ) as r:
                    assert r.status == 302
                async with http.get("/jobs", allow_redirects=False) as r:
                    assert (r.status == 200) == allowed, (name, r.status)
                    if not allowed:
                        assert r.headers["Location"] == "/account"
                async with http.get("/api/jobs") as r:
                    assert (r.status == 200) == allowed
                    if not allowed:
                        assert "one-time codes" in (await r.json())["error"]
                async with http.get("/account") as r:
                    assert r.status == 200
                    assert ("set yours up" in await r.text()) != allowed
                # Once root has codes, everything opens.
                if not allowed:
                    await users.set_totp("root", "JBSWY3DPEHPK3PXP")
                    async with http.get("/api/jobs") as r:
                        assert r.status == 200


async def test_weak_passwords_are_refused(settings: Settings) -> None:
    users = UserStore.in_data_dir(settings.data_dir)
    for weak, why in (("short", "at least 8"), ("Password123", "most common"), ("qwertyuiop", "most common")):
        with pytest.raises(UserError, match=why):
            await users.add("ana", weak)
    await users.add("ana", RIGHT)
    with pytest.raises(UserError, match="most common"):
        await users.set_password("ana", " iloveyou ")


async def test_the_generated_first_admin_password_must_be_changed_at_first_sign_in(
    settings: Settings,
) -> None:
    async with running_services(settings, ["catalog"]) as rt:
        banner = " ".join(line for svc in rt.services for line in svc.banner())
        m = re.search(r"staff user 'admin' has password (\S+) ", banner)
        assert m, banner
        first = m.group(1)
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(base_url=rt.http_url, cookie_jar=jar) as http:
            async with http.post(
                "/login", data={"username": "admin", "password": first}, allow_redirects=False
            ) as r:
                assert r.status == 302
            async with http.get("/objects", allow_redirects=False) as r:
                assert r.status == 302 and r.headers["Location"] == "/account"
            async with http.post("/api/customers", json={"slug": "acme"}) as r:
                assert r.status == 403 and "new password" in (await r.json())["error"]
            # The same password again, or a common one, will not do.
            for weak in (first, "password123"):
                form = {"current": first, "new": weak, "again": weak}
                async with http.post("/account/password", data=form) as r:
                    assert r.status == 400, weak
            form = {"current": first, "new": "a passphrase of our own", "again": "a passphrase of our own"}
            async with http.post("/account/password", data=form) as r:
                assert r.status == 200 and "Password changed" in await r.text()
            async with http.get("/objects", allow_redirects=False) as r:
                assert r.status == 200
