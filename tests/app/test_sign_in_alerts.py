"""A burst of wrong passwords against one account mails the admins once, through the notifier;
every sign-in is in the log server, searchable like any log."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from foto3d.libs.auth import UserStore
from foto3d.libs.bus.connection import Bus
from foto3d.libs.nats_server import NatsServer
from foto3d.proto.logs import LOG_QUERY, LogQuery
from testkit.running import running_services
from testkit.servers import SmtpServer
from testkit.waiting import eventually
from tests.notifier.helpers import notifier_settings

RIGHT = "correct horse battery"


async def _login(http: aiohttp.ClientSession, name: str, password: str, ip: str) -> int:
    form = {"username": name, "password": password}
    headers = {"X-Forwarded-For": ip, "User-Agent": "guesser/1.0"}
    async with http.post("/login", data=form, headers=headers, allow_redirects=False) as r:
        await r.read()
        return r.status


async def test_a_burst_of_guesses_mails_once_per_account_and_is_in_the_sign_in_log(
    tmp_path: Path, nats_server: NatsServer, bus: Bus, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = notifier_settings(tmp_path, nats_server.client_url, monkeypatch, smtp.url)
    users = UserStore.in_data_dir(settings.data_dir)
    await users.add("admin", RIGHT, admin=True)
    await users.add("ana", RIGHT)
    async with (
        running_services(settings, ["notifier", "log_collector"]) as rt,
        aiohttp.ClientSession(base_url=rt.http_url) as http,
    ):
        assert await _login(http, "ana", RIGHT, "192.0.2.7") == 302
        # 200 guesses at admin from ten addresses (so no address limit gets in the way) ...
        statuses = await asyncio.gather(
            *(_login(http, "admin", f"guess-{i}", f"198.51.100.{i % 10}") for i in range(200))
        )
        assert statuses.count(401) < 20 and statuses.count(429) > 180
        await eventually(lambda: smtp.inbox.messages, what="the alert mail")
        assert "locked user=admin" in smtp.inbox.subjects()[0]
        assert smtp.inbox.rcpts[0] == ["ops@example.com"]

        # The sign-in log: successes and failures with time, user, address and user agent.
        async def found(text: str) -> list[str]:
            reply = await bus.call(LOG_QUERY, LogQuery(source_kind="signin", text=text, limit=500))
            return [r.message for r in reply.records]

        ok = await eventually(lambda: found("ok ana"), "ana's sign-in in the log server")
        assert ok == ['ok user=ana ip=192.0.2.7 ua="guesser/1.0"']
        failed = await eventually(lambda: found("failed admin"), "admin's failures")
        assert all('ua="guesser/1.0"' in m for m in failed)
        assert await eventually(lambda: found("refused admin"), "the refused tries")

        # Every one of the 200 tries is in the log, and one of them (the one that locked the
        # account) is an error: the notifier had one thing to mail, and mailed it once.
        async def all_tries() -> bool:
            return len(await found("failed admin")) + len(await found("refused admin")) == 200

        await eventually(all_tries, "all 200 tries in the log")
        errors = await bus.call(LOG_QUERY, LogQuery(source_kind="signin", min_level=40, limit=50))
        assert [r.message.splitlines()[0][:19] for r in errors.records] == ["locked user=admin: "]
        assert len(smtp.inbox.messages) == 1


async def test_a_sign_in_from_a_new_address_is_mailed_to_the_owner_when_configured(
    tmp_path: Path, nats_server: NatsServer, bus: Bus, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = notifier_settings(tmp_path, nats_server.client_url, monkeypatch, smtp.url)
    monkeypatch.setenv("FOTO3D_AUTH_NEW_ADDRESS_MAIL", "true")
    users = UserStore.in_data_dir(settings.data_dir)
    await users.add("ana", RIGHT)
    await users.set_email("ana", "ana@example.com")
    async with (
        running_services(settings, ["notifier"]) as rt,
        aiohttp.ClientSession(base_url=rt.http_url) as http,
    ):
        # The first sign-in ever, and again from the same place: nothing to tell.
        assert await _login(http, "ana", RIGHT, "192.0.2.1") == 302
        assert await _login(http, "ana", RIGHT, "192.0.2.1") == 302
        # From somewhere new: one mail, to ana only.
        assert await _login(http, "ana", RIGHT, "203.0.113.77") == 302
        await eventually(lambda: smtp.inbox.messages, what="the new-address mail")
        assert smtp.inbox.rcpts == [["ana@example.com"]]
        msg = smtp.inbox.messages[0]
        assert smtp.inbox.subjects() == ["[foto3d] New sign-in to ana from 203.0.113.77"]
        body = msg.get_payload(decode=True)
        assert isinstance(body, bytes) and b"guesser/1.0" in body and b"change your password" in body
