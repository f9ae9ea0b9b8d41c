"""The viewer's beacon module (``libs/viewer/web/src/beacon.js``) in headless Chromium, sending
with the browser's own ``navigator.sendBeacon`` when the page is left, to a real gateway.

The module is served as it is in the source tree, from a shop page on another origin (a port of
its own), so this holds without rebuilding the viewer's bundle: a cross-origin text/plain POST
with no preflight, the page's origin checked against the key, the sums in the gateway's sqlite.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from foto3d.proto.gateway import CredentialKind
from testkit.waiting import eventually
from tests.token_gateway.helpers import Gateway
from tests.token_gateway.test_beacons import OID, total_views

BEACON_JS = Path(__file__).resolve().parents[2] / "libs" / "viewer" / "web" / "src" / "beacon.js"

PAGE = """<!doctype html><html><body><div id="viewer" style="width:300px;height:200px"></div>
<script type="module">
import { BeaconQueue } from "/beacon.js";
const q = new BeaconQueue(%(url)s, %(oid)s, { device: "phone" });
q.view();
q.poster(250);
q.firstFrame(1234);
q.interaction("orbit");
q.interaction("orbit");  // the same gesture
q.interaction("fullscreen");
q.attach(document.getElementById("viewer"));
window.beaconReady = true;
</script></body></html>"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def shop() -> AsyncIterator[tuple[str, dict[str, str]]]:
    """A shop's web server: ``/`` answers what the test puts in the dict's ``page``."""
    app = web.Application()
    port = _free_port()
    runner = web.AppRunner(app)
    served = {"page": ""}

    async def page(_: web.Request) -> web.Response:
        return web.Response(text=served["page"], content_type="text/html")

    async def module(_: web.Request) -> web.Response:
        return web.Response(text=BEACON_JS.read_text(), content_type="text/javascript")

    app.router.add_get("/", page)
    app.router.add_get("/beacon.js", module)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}", served
    finally:
        await runner.cleanup()


async def test_the_module_sends_its_beacon_when_the_page_is_left(
    beacon_gateway: Gateway,
    shop: tuple[str, dict[str, str]],
    page: Any,
) -> None:
    gw = beacon_gateway
    origin, served = shop
    await gw.publish_model(OID)
    key = await gw.issue("acme", kind=CredentialKind.PUBLISHABLE, origins=[origin])
    url = f"{gw.url}/v1/beacon?key={key}"
    served["page"] = PAGE % {"url": repr(url), "oid": repr(OID)}
    # the model must be known to the gateway before the beacon goes (else a 404, and nothing kept)
    async with aiohttp.ClientSession() as s:

        async def shown() -> bool:
            async with s.get(
                f"{gw.url}/v1/models/{OID}", params={"key": key}, headers={"Origin": origin}
            ) as r:
                return r.status == 200

        await eventually(shown, "the gateway shows the model")
    await page.goto(origin + "/")
    await page.wait_for_function("window.beaconReady === true")
    await page.goto("about:blank")  # pagehide: the module flushes with sendBeacon
    reply = await total_views(gw, 1)
    assert reply.total is not None
    row = reply.rows[0]
    assert (row.device, row.domain, row.views) == ("phone", origin.removeprefix("http://"), 1)
    assert (row.orbit, row.fullscreen, row.zoom) == (1, 1, 0)
    assert row.first_frame.count == 1 and row.poster.count == 1
