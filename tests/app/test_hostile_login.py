"""The dashboard's doors a stranger can knock on (``/login``, the session cookie, any page) and
the rig panel: malformed input is a 4xx or a redirect, never a 500, and never an ERROR record."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from foto3d.libs.auth.session import SessionSigner
from foto3d.libs.config import Settings
from foto3d.rig.panel import Panel
from testkit.running import running_services
from tests.rig.helpers import site_without_hub, write_rig

FORM = "application/x-www-form-urlencoded"
# (method, path, body, headers): each a stranger's request to the dashboard.
LOGIN_REQUESTS: list[tuple[str, str, bytes, dict[str, str]]] = [
    ("GET", "/login?next=%F1%9A", b"", {}),
    ("GET", "/login?next=%ED%A0%80", b"", {}),
    ("GET", "/login?next=//evil.example.com", b"", {}),
    ("POST", "/login", b"username=%F1%9A&password=%ED%A0%80", {"Content-Type": FORM}),
    ("POST", "/login", b"username=admin&password=%00%00", {"Content-Type": FORM}),
    ("POST", "/login", b"username=" + b"a" * 100_000 + b"&password=x", {"Content-Type": FORM}),
    ("POST", "/login", b"\xff\xfe\x00garbage", {"Content-Type": FORM}),
    ("POST", "/login", b"--x\r\nnot a part", {"Content-Type": "multipart/form-data; boundary=x"}),
    ("POST", "/login", b"garbage", {"Content-Type": "multipart/form-data"}),
    ("POST", "/login", b'{"username": "admin"}', {"Content-Type": "application/json"}),
    ("POST", "/login", b"x" * (9 * 1024 * 1024), {"Content-Type": FORM}),
    ("GET", "/objects", b"", {"Cookie": "f3d_session=admin|9999999999|\u00e9\u00e9"}),
    ("GET", "/objects", b"", {"Cookie": "f3d_session=admin|\u00b2|AAAA"}),
    ("GET", "/objects", b"", {"Cookie": "f3d_session=\u00e9|1|x"}),
    ("GET", "/api/jobs", b"", {"Cookie": "f3d_session=%ED%A0%80|1|%F1"}),
    ("GET", "/api/jobs", b"", {"Cookie": "f3d_session=" + "|" * 5000}),
    ("TRACE", "/login", b"", {}),
    ("DELETE", "/healthz", b"", {}),
]


def _latin1(headers: dict[str, str]) -> dict[str, str]:
    """Header values as the UTF-8 bytes a client would put on the wire."""
    return {k: v.encode().decode("latin-1") for k, v in headers.items()}


async def test_hostile_requests_to_the_dashboard_are_never_a_500(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    async with running_services(settings, [], http=True) as rt, aiohttp.ClientSession() as s:
        for method, path, body, headers in LOGIN_REQUESTS:
            url = URL(rt.http_url + path, encoded=True)
            async with s.request(
                method, url, data=body or None, headers=_latin1(headers), allow_redirects=False
            ) as r:
                await r.read()
                assert r.status < 500, (method, path, body[:60], headers, r.status)
                if r.status == 405:
                    assert r.headers.get("Allow"), (method, path)
        async with s.get(rt.http_url + "/healthz") as r:
            assert r.status == 200
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]


MALFORMED_HTTP = [
    b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 20_000 + b"\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n",
    b"FOO / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
]


async def _raw(host: str, port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(data)
        await writer.drain()
        return await reader.read(100)
    finally:
        writer.close()
        await writer.wait_closed()


async def test_malformed_http_is_a_warning_on_the_dashboard_and_the_rig_panel(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    rig_dir = tmp_path / "rig"
    panel = Panel(rig_dir, write_rig(rig_dir, "rig-hostile", [site_without_hub("cloud", tmp_path / "s")]))
    panel_url = URL(await panel.start(port=0))
    try:
        async with running_services(settings, [], http=True) as rt:
            dashboard = URL(rt.http_url)
            for base in (dashboard, panel_url):
                assert base.host is not None and base.port is not None
                for data in MALFORMED_HTTP:
                    answer = await _raw(base.host, base.port, data)
                    assert answer.split(b" ", 2)[1].startswith(b"4"), (base, data[:40], answer)
            async with aiohttp.ClientSession() as s:
                for method in ("TRACE", "POST", "DELETE", "OPTIONS"):
                    async with s.request(method, panel_url / "api/status") as r:
                        assert r.status == 405 and r.headers.get("Allow"), (method, r.status)
                async with s.get(panel_url / "api/status") as r:
                    assert r.status == 200
    finally:
        await panel.stop()
    warned = [r for r in caplog.records if r.levelno == logging.WARNING and r.exc_info]
    assert len(warned) >= 2 * len(MALFORMED_HTTP) - 2, len(warned)  # seen, at WARNING
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]


def test_a_strangers_session_cookie_is_no_session() -> None:
    """What aiohttp may hand over as a cookie (a lone surrogate is how it passes bytes that are
    not UTF-8): none of it raises, none of it signs anyone in."""
    signer = SessionSigner(b"k" * 32, 3600)
    strange = ("admin|s|9999999999|\u00e9\u00e9", "\udcff|s|9999999999|x", "admin|s|\u00b2|x", "|||", "")
    for cookie in (*strange, "admin|9999999999|\u00e9\u00e9", "\udcff|9999999999|x", "||"):
        assert signer.verify(cookie) is None, cookie
    assert signer.verify(signer.issue("bob")) == "bob"
