"""A batch of hostile requests from a stranger: no ERROR anywhere, no mail to staff, the gateway
healthy and every request in the access log. A fault of the gateway's own (a published file it
cannot read) then does mail staff, which shows the silence before was not a deaf notifier."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from foto3d.libs.bus.connection import Bus
from foto3d.libs.nats_server import NatsServer
from foto3d.proto.gateway import ACCESS_LOG_SOURCE_KIND, CredentialKind
from foto3d.proto.logs import LOG_QUERY, Level, LogQuery
from testkit.running import running_services
from testkit.servers import SmtpServer
from testkit.waiting import eventually
from tests.notifier.helpers import notifier_settings
from tests.token_gateway.conftest import HIGH_LIMITS
from tests.token_gateway.helpers import ORIGIN, Gateway, get
from tests.token_gateway.test_hostile_params import FILE_LINK_QUERIES, HOSTILE_HEADERS, HOSTILE_PATHS
from tests.token_gateway.test_models import OID, bearer

# Requests aiohttp's parser refuses before any route runs (so they are not in the access log).
MALFORMED_HTTP = [
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 20_000 + b"\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n",
    b"FOO /healthz HTTP/1.1\r\nHost: x\r\n\r\n",  # a method the parser does not know
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,  # a TLS hello on the plain port
]
UNDECLARED_METHODS = ["TRACE", "OPTIONS", "POST", "PUT", "DELETE", "PATCH", "CONNECT"]


@pytest.fixture
async def watched_gateway(
    tmp_path: Path, nats_server: NatsServer, bus: Bus, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Gateway]:
    """The gateway with the log server and the notifier (mailing a real SMTP server) beside it."""
    settings = notifier_settings(tmp_path, nats_server.client_url, monkeypatch, smtp.url)
    settings.raw["token_gateway"] = {"port": 0, **HIGH_LIMITS}
    async with running_services(settings, ["log_collector", "notifier", "token_gateway"], http=False) as rt:
        yield Gateway(rt=rt, bus=bus, published=settings.data_dir / "published")


async def _raw(url: str, data: bytes) -> bytes:
    u = URL(url)
    reader, writer = await asyncio.open_connection(u.host, u.port)
    try:
        writer.write(data)
        await writer.drain()
        return await reader.read(200)  # aiohttp answers and closes the connection
    finally:
        writer.close()
        await writer.wait_closed()


async def test_hostile_batch_gives_no_error_and_no_mail(
    watched_gateway: Gateway, smtp: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    gw = watched_gateway
    caplog.set_level(logging.DEBUG)
    await gw.publish_model(OID)
    token = await gw.issue("acme")
    key = await gw.issue("acme", kind=CredentialKind.PUBLISHABLE)
    sent = 0
    async with aiohttp.ClientSession() as s:
        st, body, _ = await get(s, f"{gw.url}/v1/models/{OID}", headers=bearer(token))
        assert st == 200, body
        sent += 1
        link = URL(body["poster_url"])
        q = {k: link.query[k] for k in ("exp", "cid", "sig")}
        requests: list[tuple[str, str, dict[str, str]]] = []
        for template in FILE_LINK_QUERIES:
            requests.append(("GET", f"{link.path}?{template.format(**q)}", {}))
        for path in HOSTILE_PATHS:
            requests.append(("GET", path, bearer(token)))
            requests.append(("GET", path + ("&" if "?" in path else "?") + f"key={key}", {"Origin": ORIGIN}))
        for h in HOSTILE_HEADERS:
            raw = {k: v.encode().decode("latin-1") for k, v in h.items()}
            requests.append(
                ("GET", f"/v1/models/{OID}" + ("" if "Authorization" in h else f"?key={key}"), raw)
            )
        for method in UNDECLARED_METHODS:
            for path in (
                "/healthz",
                f"/v1/models/{OID}",
                "/v1/openapi.json",
                f"{link.path}?{link.query_string}",
            ):
                requests.append((method, path, {}))
        for method, path, headers in requests:
            async with s.request(method, URL(gw.url + path, encoded=True), headers=headers) as r:
                await r.read()
                assert 400 <= r.status < 500, (method, path[:100], r.status)
                if r.status == 405:
                    assert r.headers["Allow"], (method, path)
            sent += 1
        for data in MALFORMED_HTTP:
            answer = await _raw(gw.url, data)
            assert answer == b"" or answer.split(b" ", 2)[1].startswith(b"4"), (data[:40], answer)
        st, health, _ = await get(s, f"{gw.url}/healthz")
        assert st == 200 and health["status"] == "ok", health
        sent += 1

    # The access log is complete: one record per request that reached the gateway's routes.
    async def logged() -> int:
        reply = await gw.bus.call(LOG_QUERY, LogQuery(source_kind=ACCESS_LOG_SOURCE_KIND, limit=5000))
        return len(reply.records)

    async def all_logged() -> bool:
        return await logged() >= sent

    await eventually(all_logged, what=f"{sent} access records")
    assert await logged() == sent
    errors = await gw.bus.call(LOG_QUERY, LogQuery(min_level=int(Level.ERROR), limit=50))
    assert errors.records == [], [r.message for r in errors.records]
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert gw.svc.health().state == "ok"

    # Now a fault of the gateway's own: a published viewer config it cannot read. That is a 500,
    # an ERROR and one mail, and the only mail: nothing from the batch above came before it.
    broken = "acme-broken-lamp-001"
    await gw.publish_model(broken)
    (gw.published / f"models/acme/{broken}/v1/viewer.json").write_bytes(b"{not json")
    caplog.clear()
    async with aiohttp.ClientSession() as s:

        async def five_hundred() -> bool:
            return (await get(s, f"{gw.url}/v1/models/{broken}", headers=bearer(token)))[0] == 500

        await eventually(five_hundred, what="the gateway's own fault")
    await eventually(lambda: smtp.inbox.messages, what="the mail about the gateway's fault")
    assert len(smtp.inbox.messages) == 1, smtp.inbox.subjects()
    assert broken in smtp.inbox.subjects()[0], smtp.inbox.subjects()  # the handler's own ERROR
    assert any(r.levelno >= logging.ERROR for r in caplog.records)
