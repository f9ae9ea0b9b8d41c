"""Staff sign-in: hashed passwords, signed cookies, the trusted proxy header, attribution."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import aiohttp

from foto3d.libs.auth import UserError, UserStore
from foto3d.libs.auth.session import SessionSigner, load_secret
from foto3d.libs.config import Settings
from testkit.running import running_services
from tests.catalog.helpers import call, signed_in


async def test_passwords_are_salted_hashes_and_checked(tmp_path: Path) -> None:
    users = UserStore.in_data_dir(tmp_path)
    await users.add("ana", "s3cret-password")
    await users.add("bo", "s3cret-password")
    stored = [r[0] for r in sqlite3.connect(users.path).execute("SELECT password FROM users ORDER BY name")]
    assert all(s.startswith("scrypt$") and "s3cret" not in s for s in stored)
    assert stored[0] != stored[1]  # per-user salt
    assert await users.authenticate("ana", "s3cret-password") is not None
    assert await users.authenticate("ana", "wrong-password") is None
    assert await users.authenticate("nobody", "s3cret-password") is None
    for bad_name, password, why in (("Ana Smith", "long-enough", "user name"), ("cy", "short", "at least 8")):
        try:
            await users.add(bad_name, password)
        except UserError as exc:
            assert why in str(exc)
        else:
            raise AssertionError("accepted a bad user")
    await users.set_disabled("ana", True)
    assert await users.authenticate("ana", "s3cret-password") is None


def test_session_cookies_are_signed_and_expire(tmp_path: Path) -> None:
    key = load_secret(tmp_path / "k")
    assert (tmp_path / "k").stat().st_mode & 0o777 == 0o600 and load_secret(tmp_path / "k") == key
    signer = SessionSigner(key, 3600)
    cookie = signer.issue("ana", now=1000.0)
    assert signer.verify(cookie, now=2000.0) == "ana"
    assert signer.verify(cookie, now=1000.0 + 3601) is None  # expired
    assert signer.verify(cookie.replace("ana", "admin"), now=2000.0) is None  # tampered
    assert SessionSigner(b"other" * 8, 3600).verify(cookie, now=2000.0) is None


async def test_proxy_header_signs_in_only_from_trusted_peers(settings: Settings) -> None:
    settings.raw["auth"] = {"proxy_header": "X-Forwarded-User", "trusted_proxies": ["127.0.0.1"]}
    async with (
        running_services(settings, ["catalog"]) as rt,
        aiohttp.ClientSession(base_url=rt.http_url) as proxy,
    ):
        st, _ = await call(proxy, "POST", "/api/customers", {"slug": "acme"})
        assert st == 401  # no header
        async with proxy.post(
            "/api/customers", json={"slug": "acme"}, headers={"X-Forwarded-User": "sso.user"}
        ) as r:
            assert r.status == 201 and (await r.json())["actor"] == "sso.user"
        async with proxy.get("/objects", headers={"X-Forwarded-User": "sso.user"}) as r:
            assert r.status == 200 and "sso.user" in await r.text()
    settings.raw["auth"] = {"proxy_header": "X-Forwarded-User", "trusted_proxies": ["10.9.9.9"]}
    async with running_services(settings, ["catalog"]) as rt:
        async with aiohttp.ClientSession(base_url=rt.http_url) as http:
            async with http.post(
                "/api/customers", json={"slug": "other"}, headers={"X-Forwarded-User": "mallory"}
            ) as r:
                assert r.status == 401  # the header from an untrusted peer is ignored
            async with http.get("/objects", allow_redirects=False) as r:
                assert r.status == 302 and r.headers["Location"].startswith("/login?next=")
        s = await signed_in(rt, settings)
        async with s:
            async with s.post("/logout", allow_redirects=False) as r:
                assert r.status == 302
            st, _ = await call(s, "POST", "/api/customers", {"slug": "acme2"})
            assert st == 401  # signed out
