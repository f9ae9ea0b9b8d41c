"""The customer portal on several gateway instances that share no data folder (two sites, ECS
tasks without a volume): every account, invitation, one-time code and session reaches all of
them over the bus, and a sign-out on one holds on every one."""

from __future__ import annotations

import asyncio
import time
from contextlib import AsyncExitStack
from functools import partial
from pathlib import Path

import aiohttp

from foto3d.libs.auth.totp import secret_bytes, totp
from foto3d.libs.bus.connection import Bus
from foto3d.libs.config import Settings
from foto3d.services.token_gateway.portal.accounts import PortalAccounts
from foto3d.services.token_gateway.portal.signin import COOKIE
from testkit.running import running_services
from testkit.waiting import eventually
from tests.token_gateway.helpers import Gateway

PASSWORD = "correct horse battery staple"
EMAIL = "ana@acme.example"
SECRET = "JBSWY3DPEHPK3PXP"


async def _get(s: aiohttp.ClientSession, url: str, cookie: str = "") -> int:
    headers = {"Cookie": f"{COOKIE}={cookie}"} if cookie else {}
    async with s.get(url, headers=headers, allow_redirects=False) as r:
        await r.read()
        return r.status


async def _post(
    s: aiohttp.ClientSession, url: str, data: dict[str, str], cookie: str = ""
) -> tuple[int, str]:
    """(status, the portal cookie the answer set, else "")."""
    headers = {"Cookie": f"{COOKIE}={cookie}"} if cookie else {}
    async with s.post(url, data=data, headers=headers, allow_redirects=False) as r:
        await r.read()
        set_cookie = r.cookies.get(COOKIE)
        return r.status, set_cookie.value if set_cookie is not None else ""


async def _sign_in(s: aiohttp.ClientSession, gw: Gateway) -> tuple[int, str]:
    return await _post(
        s, f"{gw.url}/portal/login", {"username": EMAIL, "password": PASSWORD, "next": "/portal/"}
    )


async def test_accounts_invites_and_sessions_reach_every_instance(
    settings: Settings, bus: Bus, tmp_path: Path
) -> None:
    assert settings.nats_urls
    nats = settings.nats_urls[0]

    def instance(i: int) -> Settings:
        own = Settings.load(data_dir=tmp_path / f"instance{i}", nats=nats, http_port=0)
        own.raw["token_gateway"] = {"port": 0, "local_root": str(tmp_path / "published")}
        return own

    async with AsyncExitStack() as stack:

        async def start(i: int) -> Gateway:
            rt = await stack.enter_async_context(running_services(instance(i), ["token_gateway"], http=False))
            return Gateway(rt=rt, bus=bus, published=tmp_path / "published")

        one, two = await start(0), await start(1)
        assert one.svc.portal is not None and two.svc.portal is not None
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as s:
            # invited through one instance, the link answered on the other
            _, token, _ = await one.svc.portal.accounts.invite("acme", EMAIL, "ops", 1.0)
            link = f"/portal/invite/{token}"

            async def link_status(gw: Gateway, want: int) -> bool:
                return await _get(s, gw.url + link) == want

            await eventually(lambda: link_status(two, 200), "the invitation on the other instance")
            status, accepted = await _post(s, two.url + link, {"password": PASSWORD, "again": PASSWORD})
            assert status == 303 and accepted
            assert await _get(s, f"{two.url}/portal/", accepted) == 200
            # the used link is refused on the instance that sent it, too
            await eventually(
                lambda: link_status(one, 404), "the used invitation refused on the first instance"
            )
            status, _ = await _post(s, one.url + link, {"password": PASSWORD, "again": PASSWORD})
            assert status == 404

            # sign in on either; the session is good on both
            status, cookie = await _sign_in(s, one)
            assert status == 303 and cookie
            for gw in (one, two):
                await eventually(partial(_is, s, f"{gw.url}/portal/", cookie, 200), "the session everywhere")
            # signed out on one, the cookie is refused on both
            status, _ = await _post(s, f"{two.url}/portal/logout", {}, cookie)
            assert status == 303
            assert await _get(s, f"{two.url}/portal/", cookie) == 303
            await eventually(lambda: _is(s, f"{one.url}/portal/", cookie, 303), "the sign-out on the first")
            assert await _get(s, f"{two.url}/portal/", accepted) == 200  # only that session ended

            # one-time codes turned on at one instance are asked for at the other
            await two.svc.portal.accounts.users.set_totp(EMAIL, SECRET)

            async def codes_on() -> bool:
                assert one.svc.portal is not None
                user = await one.svc.portal.accounts.users.get(EMAIL)
                return user is not None and user.totp

            await eventually(codes_on, "one-time codes on at the first instance")
            # a code used at one instance is refused at the other
            code = totp(secret_bytes(SECRET), time.time())
            assert await one.svc.portal.accounts.users.check_code(EMAIL, code)

            async def step_known() -> bool:
                assert two.svc.portal is not None
                return (await two.svc.portal.accounts.users.totp_secret(EMAIL))[1] > 0

            await eventually(step_known, "the used code's step on the second instance")
            assert not await two.svc.portal.accounts.users.check_code(EMAIL, code)
            await two.svc.portal.accounts.users.set_totp(EMAIL, "")

            # a new instance with an empty folder knows the account and the live session at once
            status, cookie = await _sign_in(s, one)
            assert status == 303
            late = await start(2)
            assert await _get(s, f"{late.url}/portal/", cookie) == 200
            assert await _get(s, f"{late.url}/portal/", accepted) == 200
            assert await _get(s, late.url + link) == 404
            status, _ = await _sign_in(s, late)
            assert status == 303


async def test_one_invitation_is_accepted_once_across_instances(
    settings: Settings, bus: Bus, tmp_path: Path
) -> None:
    """Two instances accept the same live link at the same moment: the stream takes one."""
    assert settings.nats_urls
    async with AsyncExitStack() as stack:
        gws = []
        for i in range(2):
            own = Settings.load(data_dir=tmp_path / f"instance{i}", nats=settings.nats_urls[0], http_port=0)
            own.raw["token_gateway"] = {"port": 0, "local_root": str(tmp_path / "published")}
            rt = await stack.enter_async_context(running_services(own, ["token_gateway"], http=False))
            gws.append(Gateway(rt=rt, bus=bus, published=tmp_path / "published"))
        portals = [g.svc.portal for g in gws]
        assert portals[0] is not None and portals[1] is not None
        accounts = [portals[0].accounts, portals[1].accounts]
        _, token, _ = await accounts[0].invite("acme", EMAIL, "ops", 1.0)

        async def seen() -> bool:
            return await accounts[1].invited(token) is not None

        await eventually(seen, "the invitation on the second instance")
        won = await asyncio.gather(
            accounts[0].accept(token, PASSWORD), accounts[1].accept(token, "another good passphrase")
        )
        assert sum(m is not None for m in won) == 1, won
        for a in accounts:
            await eventually(partial(_used_up, a, token), "the link used up everywhere")


async def _used_up(accounts: PortalAccounts, token: str) -> bool:
    return await accounts.invited(token) is None


async def _is(s: aiohttp.ClientSession, url: str, cookie: str, want: int) -> bool:
    return await _get(s, url, cookie) == want
