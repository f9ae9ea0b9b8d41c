"""Staff accounts are every dashboard instance's, not one data folder's (AUTH_ACCOUNTS).

Two dashboards with separate data folders on one bus (authorization on): an account added by the
CLI (with the staff key) signs in on both; a password changed on one ends the sessions and the
old password on both; signing out on one ends the cookie on both; a third instance started late
with an empty folder knows everyone, including an account that existed in one folder before the
stream did. The staff role may publish a change but never read the stream.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from contextlib import AsyncExitStack
from pathlib import Path

import aiohttp
import nats.errors
import pytest

from foto3d.libs.auth import UserStore
from foto3d.libs.auth.web import COOKIE
from foto3d.libs.bus.connection import connect
from foto3d.libs.config import Settings
from foto3d.libs.nats_server import NatsServer
from foto3d.proto import subjects
from testkit.identities import creds_for
from testkit.running import running_services
from testkit.servers import free_port
from testkit.waiting import eventually

RIGHT = "correct horse battery"
NEW = "a brand new passphrase"


def folder(tmp_path: Path, name: str, server: NatsServer) -> Settings:
    data = tmp_path / name
    data.mkdir()
    return Settings.load(data_dir=data, nats=server.client_url, http_port=0)


def users_cli(
    settings: Settings, *args: str, stdin: str = "", nats: str = ""
) -> subprocess.CompletedProcess[str]:
    assert settings.nats_urls
    cmd = [
        sys.executable,
        "-m",
        "foto3d.cli.main",
        "users",
        *args,
        "--data",
        str(settings.data_dir),
        "--nats",
        nats or settings.nats_urls[0],
        "--creds",
        str(creds_for("staff")),
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, input=stdin)


async def sign_in(base: str, name: str, password: str) -> tuple[int, str]:
    """(status of POST /login, the session cookie's value or '')."""
    async with (
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http,
        http.post(f"{base}/login", data={"username": name, "password": password}, allow_redirects=False) as r,
    ):
        return r.status, r.cookies[COOKIE].value if COOKIE in r.cookies else ""


async def signed_in(base: str, cookie: str) -> bool:
    async with (
        aiohttp.ClientSession(cookies={COOKIE: cookie}) as http,
        http.get(f"{base}/account", allow_redirects=False) as r,
    ):
        return r.status == 200  # else a redirect to /login


async def signed_out(base: str, cookie: str) -> bool:
    return not await signed_in(base, cookie)


async def signs_in(base: str, name: str, password: str) -> bool:
    return (await sign_in(base, name, password))[0] == 302


async def test_staff_accounts_reach_every_dashboard(tmp_path: Path, nats_server: NatsServer) -> None:
    a_settings = folder(tmp_path, "a", nats_server)
    b_settings = folder(tmp_path, "b", nats_server)
    # An account that existed in A's folder before any stream did (the upgrade).
    await UserStore.in_data_dir(a_settings.data_dir).add("ana", RIGHT)
    async with AsyncExitStack() as stack:
        a = (await stack.enter_async_context(running_services(a_settings, []))).http_url
        b = (await stack.enter_async_context(running_services(b_settings, []))).http_url

        # Added by the CLI on B's host: both sign bob in.
        added = await asyncio.to_thread(users_cli, b_settings, "add", "bob", "--password-stdin", stdin=RIGHT)
        assert added.returncode == 0 and "added user bob" in added.stdout, added
        assert (await sign_in(b, "bob", RIGHT))[0] == 302
        await eventually(lambda: signs_in(a, "bob", RIGHT), "bob signs in on A")
        # ana, once only A's, signs in on B.
        assert (await sign_in(b, "ana", RIGHT))[0] == 302
        taken = await asyncio.to_thread(users_cli, a_settings, "add", "bob", "--password-stdin", stdin=RIGHT)
        assert taken.returncode != 0 and "already exists" in taken.stderr, taken

        # A cookie made on A is good on B; signing out on A ends it on B.
        _, cookie = await sign_in(a, "bob", RIGHT)
        assert await signed_in(a, cookie) and await signed_in(b, cookie)
        async with aiohttp.ClientSession(cookies={COOKIE: cookie}) as http, http.post(f"{a}/logout") as r:
            assert r.status < 500
        assert not await signed_in(a, cookie)
        await eventually(lambda: signed_out(b, cookie), "signed out on B")

        # A password changed on A: bob's session on B ends, and the old password with it.
        _, on_b = await sign_in(b, "bob", RIGHT)
        _, on_a = await sign_in(a, "bob", RIGHT)
        form = {"current": RIGHT, "new": NEW, "again": NEW}
        async with (
            aiohttp.ClientSession(cookies={COOKIE: on_a}) as http,
            http.post(f"{a}/account/password", data=form) as r,
        ):
            assert r.status == 200 and "Password changed" in await r.text()
        assert await signed_in(a, on_a)  # the one that changed it stays
        await eventually(lambda: signed_out(b, on_b), "signed out on B")
        assert (await sign_in(b, "bob", RIGHT))[0] == 401
        assert (await sign_in(b, "bob", NEW))[0] == 302

        # The CLI signs bob out everywhere.
        ended = await asyncio.to_thread(users_cli, a_settings, "sessions", "bob", "--end-all")
        assert ended.returncode == 0, ended
        await eventually(lambda: signed_out(b, on_a), "signed out on B")

        # A third instance, started late with an empty folder, knows everyone at once.
        c_settings = folder(tmp_path, "c", nats_server)
        c = (await stack.enter_async_context(running_services(c_settings, []))).http_url
        assert (await sign_in(c, "bob", NEW))[0] == 302
        assert (await sign_in(c, "ana", RIGHT))[0] == 302
        assert (await sign_in(c, "bob", RIGHT))[0] == 401


async def test_staff_may_publish_account_changes_but_never_read_them(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    settings = folder(tmp_path, "a", nats_server)
    async with running_services(settings, []):
        added = await asyncio.to_thread(users_cli, settings, "add", "eve", "--password-stdin", stdin=RIGHT)
        assert added.returncode == 0, added
    staff = await connect([nats_server.client_url], "staff-reader", creds=creds_for("staff"))
    try:
        info = await staff.js.stream_info(subjects.AUTH_ACCOUNTS_STREAM)
        assert info.state.messages > 0  # the stream's state is visible, its messages are not
        with pytest.raises(nats.errors.Error):
            await staff.js.get_msg(subjects.AUTH_ACCOUNTS_STREAM, 1)
        with pytest.raises(nats.errors.Error):
            await staff.js.get_last_msg(subjects.AUTH_ACCOUNTS_STREAM, subjects.auth_cookie_key())
        with pytest.raises(nats.errors.Error):
            await staff.js.subscribe(subjects.AUTH_ACCOUNTS_ALL, stream=subjects.AUTH_ACCOUNTS_STREAM)
    finally:
        await staff.close()


async def test_a_lone_host_adds_people_without_a_bus_and_shares_them_when_one_runs(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    a_settings = folder(tmp_path, "a", nats_server)
    nobody = f"nats://127.0.0.1:{free_port()}"
    offline = await asyncio.to_thread(
        users_cli, a_settings, "add", "olga", "--password-stdin", stdin=RIGHT, nats=nobody
    )
    assert offline.returncode == 0 and "added user olga" in offline.stdout, offline
    assert "no bus reachable" in offline.stderr, offline
    assert await UserStore.in_data_dir(a_settings.data_dir).authenticate("olga", RIGHT) is not None
    # The bus comes: the first dashboard on that folder publishes olga; an empty one knows her.
    b_settings = folder(tmp_path, "b", nats_server)
    async with running_services(a_settings, []), running_services(b_settings, []) as b:
        assert await signs_in(b.http_url, "olga", RIGHT)
