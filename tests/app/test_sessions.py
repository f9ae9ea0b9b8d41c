"""Sessions can be listed and ended: sign out everywhere (dashboard and CLI), a changed password
ends the other sessions, signing out ends the session on the server, not just in the browser."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import aiohttp

from foto3d.libs.auth import UserStore
from foto3d.libs.config import Settings
from testkit.running import running_services

RIGHT = "correct horse battery"


def jar() -> aiohttp.CookieJar:
    return aiohttp.CookieJar(unsafe=True)  # keep the cookie of a 127.0.0.1 server


async def signed_in(
    base: str, name: str, password: str = RIGHT, agent: str = "browser-a"
) -> aiohttp.ClientSession:
    http = aiohttp.ClientSession(base_url=base, cookie_jar=jar(), headers={"User-Agent": agent})
    async with http.post("/login", data={"username": name, "password": password}, allow_redirects=False) as r:
        assert r.status == 302, r.status
    return http


async def status(http: aiohttp.ClientSession) -> int:
    async with http.get("/api/jobs", allow_redirects=False) as r:
        return r.status


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "foto3d.cli.main", "users", *args, "--data", str(settings.data_dir)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


async def test_sessions_are_listed_and_ended_everywhere(settings: Settings) -> None:
    await UserStore.in_data_dir(settings.data_dir).add("ana", RIGHT)
    async with running_services(settings, ["queue"]) as rt:
        a = await signed_in(rt.http_url, "ana", agent="laptop")
        b = await signed_in(rt.http_url, "ana", agent="phone")
        try:
            assert await status(a) == 200 and await status(b) == 200
            async with a.get("/account") as r:
                page = await r.text()
                assert page.count("data-session=") == 2 and "laptop" in page and "phone" in page
            listed = await asyncio.to_thread(cli, settings, "sessions", "ana")
            assert listed.returncode == 0 and len(listed.stdout.splitlines()) == 2, listed
            # "Sign out everywhere else" from the laptop: the phone is out, the laptop stays.
            async with a.post("/account/sessions/end", data={"keep": "this"}) as r:
                assert r.status == 200 and "Signed out 1 other session" in await r.text()
            assert await status(b) == 401 and await status(a) == 200
            # The CLI signs ana out everywhere.
            ended = await asyncio.to_thread(cli, settings, "sessions", "ana", "--end-all")
            assert ended.returncode == 0 and "ended 1 session" in ended.stdout, ended
            assert await status(a) == 401
        finally:
            await a.close()
            await b.close()


async def test_a_changed_password_ends_the_other_sessions_and_sign_out_ends_this_one(
    settings: Settings,
) -> None:
    await UserStore.in_data_dir(settings.data_dir).add("ana", RIGHT)
    async with running_services(settings, ["queue"]) as rt:
        a = await signed_in(rt.http_url, "ana")
        b = await signed_in(rt.http_url, "ana")
        try:
            form = {
                "current": "not it at all",
                "new": "a brand new passphrase",
                "again": "a brand new passphrase",
            }
            async with a.post("/account/password", data=form) as r:
                assert r.status == 400 and "current password is wrong" in await r.text()
            form["current"] = RIGHT
            async with a.post("/account/password", data=form) as r:
                assert r.status == 200 and "Password changed" in await r.text()
            assert await status(a) == 200 and await status(b) == 401
            # Signing out ends the session itself: a copy of the cookie is worthless afterwards.
            copied = {c.key: c.value for c in a.cookie_jar}
            async with a.post("/logout", allow_redirects=False) as r:
                assert r.status == 302
            async with aiohttp.ClientSession(base_url=rt.http_url, cookies=copied) as thief:
                assert await status(thief) == 401
        finally:
            await a.close()
            await b.close()
