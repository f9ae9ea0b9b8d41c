"""The customer portal against a real gateway and notifier: real nats-server, real sqlite, a real
SMTP server (aiosmtpd) for the invitation, real HTTP; the pages in headless Chromium."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest

from foto3d.cli.main import main
from foto3d.libs.auth.gate import is_public_route
from foto3d.libs.bus.connection import Bus, connect
from foto3d.libs.config import Settings
from foto3d.libs.nats_server import NatsServer
from foto3d.proto.analytics import ANALYTICS, AnalyticsQuery
from foto3d.proto.api import FORBIDDEN, ServiceError
from foto3d.proto.gateway import PORTAL_INVITE, PortalInviteRequest
from foto3d.proto.objects import (
    CUSTOMER_ADD,
    CUSTOMER_VIEWER,
    REGISTER,
    CustomerAdd,
    CustomerViewerRequest,
    RegisterObject,
)
from foto3d.proto.webhooks import (
    WEBHOOK_ADD,
    WEBHOOK_DELIVERIES,
    WEBHOOK_LIST,
    WEBHOOK_REMOVE,
    CustomerRef,
    EndpointAdd,
    EndpointRef,
    EndpointView,
)
from foto3d.services.catalog.review import save_settings
from foto3d.services.catalog.service import CatalogService
from foto3d.services.catalog.viewer_settings import saved_versions
from testkit.identities import creds_for
from testkit.running import running_services
from testkit.servers import SmtpServer, free_port
from testkit.waiting import eventually
from tests.notifier.helpers import notifier_settings
from tests.token_gateway.helpers import ORIGIN, Gateway

OWN = ("acme-desk-lamp-001", "acme-arm-chair-002")
OTHERS = "globex-floor-vase-001"
PASSWORD = "correct horse battery staple"
EMAIL = "ana@acme.example"

GATEWAY = """
[token_gateway]
port = 0
beacon_flush_s = 0.1
trusted_proxies = ["127.0.0.1/32"]
"""


@pytest.fixture
async def portal(
    tmp_path: Path, nats_server: NatsServer, bus: Bus, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Gateway, Settings]]:
    settings = notifier_settings(tmp_path, nats_server.client_url, monkeypatch, smtp.url, extra=GATEWAY)
    async with running_services(settings, ["notifier", "token_gateway"], http=False) as rt:
        gw = Gateway(rt=rt, bus=bus, published=settings.data_dir / "published")
        for oid in (*OWN, OTHERS):
            await gw.publish_model(oid, name=oid.split("-", 1)[1].rsplit("-", 1)[0].replace("-", " ").title())
        await eventually(
            lambda: all(gw.svc.parts and gw.svc.parts.index.get(o) for o in (*OWN, OTHERS)), "models"
        )
        yield gw, settings


def invite_link(smtp: SmtpServer, to: str) -> str:
    for msg, rcpts in zip(smtp.inbox.messages, smtp.inbox.rcpts, strict=True):
        if rcpts == [to]:
            body = msg.get_payload(decode=True)
            assert isinstance(body, bytes)
            found = re.search(rb"http://\S+/portal/invite/[A-Za-z0-9_-]{43}", body)
            assert found, body
            return found.group(0).decode()
    return ""


async def sign_in(
    s: aiohttp.ClientSession, gw: Gateway, password: str, **headers: str
) -> aiohttp.ClientResponse:
    async with s.post(
        f"{gw.url}/portal/login",
        data={"username": EMAIL, "password": password, "next": "/portal/"},
        allow_redirects=False,
        headers=headers,
    ) as r:
        await r.read()
        return r


async def test_invite_mail_password_sign_in_and_only_own_models(
    portal: tuple[Gateway, Settings], smtp: SmtpServer, capsys: pytest.CaptureFixture[str]
) -> None:
    gw, settings = portal
    assert settings.nats_urls
    system = ["--nats", settings.nats_urls[0], "--data", str(settings.data_dir)]
    code = await asyncio.to_thread(main, ["portal", "invite", *system, "acme", EMAIL, "--as", "ops"])
    out, err = capsys.readouterr()
    assert code == 0, (out, err)
    assert f"invited {EMAIL} to the portal of acme: link mailed" in out
    link = await eventually(lambda: invite_link(smtp, EMAIL), "the invitation mail")
    assert smtp.inbox.subjects() == ["[foto3d] Your invitation to the acme customer portal"]
    assert link.startswith(gw.url + "/portal/invite/")

    # (a jar that keeps cookies of an IP address: the test's gateway has no host name)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
        # before the password is set, nothing signs in (the account's first password is random)
        assert (await sign_in(s, gw, PASSWORD)).status == 401
        async with s.get(link) as r:
            assert r.status == 200 and "Choose the password" in await r.text()
        # the staff's strength rules
        async with s.post(
            link, data={"password": "password1", "again": "password1"}, allow_redirects=False
        ) as r:
            assert r.status == 400 and "most common" in await r.text()
        async with s.post(link, data={"password": PASSWORD, "again": PASSWORD}, allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"] == "/portal/account?welcome=1"
            cookie = r.headers["Set-Cookie"]
            assert cookie.startswith("f3d_portal=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
            assert "Path=/portal" in cookie
        # the link worked once
        async with s.get(link) as r:
            assert r.status == 404 and "has been used" in await r.text()
        async with s.post(link, data={"password": PASSWORD, "again": PASSWORD}, allow_redirects=False) as r:
            assert r.status == 404

        # signed in: its own models, never another customer's, whatever the URL says
        async with s.get(f"{gw.url}/portal/") as r:
            text = await r.text()
            assert r.status == 200
        for oid in OWN:
            assert f'data-object="{oid}"' in text
        assert OTHERS not in text
        async with s.get(f"{gw.url}/portal/models/{OTHERS}") as r:
            assert r.status == 404 and OTHERS not in await r.text()
        async with s.get(f"{gw.url}/portal/models/{OWN[0]}/preview") as r:
            assert r.status == 404  # no key yet: nothing to preview with
        async with s.get(f"{gw.url}/portal/models/{OTHERS}/preview") as r:
            assert r.status == 404

        # a POST from another origin is refused, even with the session
        async with s.post(
            f"{gw.url}/portal/keys", data={"origins": ORIGIN}, headers={"Origin": "https://evil.example"}
        ) as r:
            assert r.status == 403 and "cross-site" in await r.text()
        assert not gw.svc.parts or not gw.svc.parts.store.list_credentials("acme", include_revoked=True)

        # sign out: the cookie is worthless, even if kept
        async with s.post(f"{gw.url}/portal/logout", allow_redirects=False) as r:
            assert r.status == 303
        async with s.get(f"{gw.url}/portal/", allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"].startswith("/portal/login?next=")

    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
        # reached over HTTPS (a trusted proxy says so): the cookie is Secure too
        r = await sign_in(s, gw, PASSWORD, **{"X-Forwarded-Proto": "https"})
        assert r.status == 303 and "Secure" in r.headers["Set-Cookie"]
        # guessing: failures make further tries wait, and a waiting account refuses even the
        # right password unseen (the staff's rule)
        statuses = []
        for _ in range(12):
            statuses.append((await sign_in(s, gw, "wrong password here")).status)
            if statuses[-1] == 429:
                break
        assert statuses[:5] == [401] * 5 and statuses[-1] == 429, statuses
        r = await sign_in(s, gw, PASSWORD)
        assert r.status == 429 and int(r.headers["Retry-After"]) >= 1

    # an account belongs to one customer
    with pytest.raises(ServiceError, match="another customer"):
        await gw.bus.call(PORTAL_INVITE, PortalInviteRequest(customer="globex", email=EMAIL))


def _sample_path(path: str) -> str:
    return re.sub(r"\{([a-z_]+)(:[^}]*)?\}", lambda m: {"object_id": OWN[0]}.get(m.group(1), "x" * 16), path)


async def test_every_portal_route_refuses_a_request_without_a_session(
    portal: tuple[Gateway, Settings],
) -> None:
    gw, _ = portal
    assert gw.svc.listener is not None
    routes = [
        r
        for r in gw.svc.listener.app.router.routes()
        if (r.resource is not None and r.resource.canonical.startswith("/portal")) and r.method != "HEAD"
    ]
    public = sorted(f"{r.method} {r.resource.canonical}" for r in routes if is_public_route(r) and r.resource)
    # Open to anyone: signing in and out, and the invitation link (its token is the credential).
    assert public == [
        "GET /portal/invite/{token}",
        "GET /portal/login",
        "POST /portal/invite/{token}",
        "POST /portal/login",
        "POST /portal/logout",
    ]
    private = [r for r in routes if not is_public_route(r)]
    assert len(private) >= 10
    async with aiohttp.ClientSession() as s:
        for r in private:
            assert r.resource is not None
            path = _sample_path(r.resource.canonical)
            async with s.request(
                r.method, gw.url + path, data={"origins": ORIGIN}, allow_redirects=False
            ) as resp:
                body = await resp.text()
                if r.method == "GET":
                    assert resp.status == 303, (path, resp.status, body[:200])
                    assert resp.headers["Location"].startswith("/portal/login?next="), path
                else:
                    assert resp.status == 401, (path, resp.status, body[:200])
    # and nothing was done by those requests
    assert gw.svc.parts is not None
    assert not gw.svc.parts.store.list_credentials("acme", include_revoked=True)


async def beacons(gw: Gateway, key: str, object_id: str, first_frames: list[int]) -> None:
    async with aiohttp.ClientSession() as s:
        for ms in first_frames:
            body = {
                "object_id": object_id,
                "device": "phone",
                "events": [{"kind": "view"}, {"kind": "first_frame", "ms": ms}],
            }
            async with s.post(
                f"{gw.url}/v1/beacon",
                params={"key": key},
                data=msgspec.json.encode(body),
                headers={"Origin": ORIGIN, "Content-Type": "text/plain;charset=UTF-8"},
            ) as r:
                assert r.status == 202, await r.text()


PAGES = (
    "/portal/",
    f"/portal/models/{OWN[0]}",
    "/portal/keys",
    "/portal/analytics",
    "/portal/webhooks",
    "/portal/account",
)
WIDE = "() => document.documentElement.scrollWidth"


async def test_the_portal_in_chromium_keys_analytics_and_phone_width(
    portal: tuple[Gateway, Settings], page: Any
) -> None:
    gw, _ = portal
    svc = gw.svc
    assert svc.portal is not None and svc.parts is not None
    # the invitation as the mail carries it (the mail itself is the test above's)
    _member, token, _ = await svc.portal.accounts.invite("acme", EMAIL, "ops", 1.0)
    await page.goto(f"{gw.url}/portal/invite/{token}")
    await page.fill("input[name=password]", PASSWORD)
    await page.fill("input[name=again]", PASSWORD)
    await page.click("#invite-form button")
    await page.wait_for_url("**/portal/account?welcome=1")
    assert "Your password is set" in await page.inner_text("main")

    await page.goto(f"{gw.url}/portal/")
    cards = await page.eval_on_selector_all("#models .card", "els => els.map(e => e.dataset.object)")
    assert sorted(cards) == sorted(OWN)

    # issue a key from the page; the gateway serves the model with it from its origin
    await page.goto(f"{gw.url}/portal/keys")
    await page.fill("#issue-form input[name=label]", "shop")
    await page.fill("#issue-form textarea[name=origins]", ORIGIN)
    await page.click("#issue-form button")
    key = (await page.inner_text("#new-token")).strip()
    assert re.fullmatch(r"pk_[0-9a-f]{16}_\S{43}", key), key
    cid = key.split("_")[1]
    async with aiohttp.ClientSession() as s:
        async with s.get(
            f"{gw.url}/v1/models/{OWN[0]}", params={"key": key}, headers={"Origin": ORIGIN}
        ) as r:
            assert r.status == 200
        async with s.get(
            f"{gw.url}/v1/models/{OTHERS}", params={"key": key}, headers={"Origin": ORIGIN}
        ) as r:
            assert r.status == 404

    # the model page: the live preview (the embed page, with this key's pass) and a snippet per origin
    await page.goto(f"{gw.url}/portal/models/{OWN[0]}")
    assert await page.get_attribute("iframe.preview", "src") == f"/portal/models/{OWN[0]}/preview"
    snippet = await page.inner_text(f'.snippet[data-origin="{ORIGIN}"] pre')
    assert f"{gw.url}/embed/{OWN[0]}?key=pk_{cid}_" in snippet and "<iframe" in snippet
    frame = page.frame_locator("iframe.preview")
    await frame.locator("foto3d-viewer").wait_for(state="attached")

    # beacons sent now are on the analytics page: views and first-frame percentiles per day and site
    await beacons(gw, key, OWN[0], [800, 1200, 2000, 3100])

    async def summed() -> bool:
        reply = await gw.bus.call(ANALYTICS, AnalyticsQuery(customer="acme"))
        return reply.total is not None and reply.total.views >= 4

    await eventually(summed, "the beacons summed")
    await page.goto(f"{gw.url}/portal/analytics")
    assert "(4 in 30 days)" in await page.inner_text("#total-views")
    row = page.locator('#per-domain tr[data-domain="shop.example.com"]')
    cells = await row.locator("td").all_inner_texts()
    assert cells[1:3] == ["shop.example.com", "4"], cells
    assert all(c.endswith(" ms") for c in cells[3:]), cells
    assert await page.locator("svg.chart rect").count() == 30
    assert await page.locator("svg.chart polyline, svg.chart circle").count() >= 3
    # the page keeps each day's sums until a fold touches that day: newer beacons show at once
    await beacons(gw, key, OWN[0], [900, 950])

    async def summed_again() -> bool:
        reply = await gw.bus.call(ANALYTICS, AnalyticsQuery(customer="acme"))
        return reply.total is not None and reply.total.views >= 6

    await eventually(summed_again, "the newer beacons summed")
    await page.goto(f"{gw.url}/portal/analytics")
    assert "(6 in 30 days)" in await page.inner_text("#total-views")

    # phone width: every page fits 420 px without sideways scrolling
    await page.set_viewport_size({"width": 420, "height": 860})
    for path in PAGES:
        await page.goto(gw.url + path)
        assert await page.evaluate(WIDE) <= 420, path
    await page.set_viewport_size({"width": 1280, "height": 860})

    # revoke it from the page: the gateway refuses the key at once
    await page.goto(f"{gw.url}/portal/keys")
    await page.click(f'tr[data-key="{cid}"] button')
    await page.wait_for_url("**/portal/keys")
    assert "revoked" in await page.inner_text(f'tr[data-key="{cid}"]')
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"{gw.url}/v1/models/{OWN[0]}", params={"key": key}, headers={"Origin": ORIGIN}) as r,
    ):
        assert r.status in (401, 403), r.status


async def test_the_webhooks_page_shows_the_customers_own_endpoints_and_deliveries(
    settings: Settings, bus: Bus
) -> None:
    """Read from the catalog over the bus, for the session's customer only."""
    settings.raw["catalog"] = {
        "create_admin": False,
        "webhooks": {"timeout_s": 1.0, "retry_initial_s": 0.2, "retry_max_s": 1.0},
    }
    settings.raw["token_gateway"] = {"port": 0}
    closed = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens: deliveries are tried and fail
    async with running_services(settings, ["catalog", "token_gateway"], http=False) as rt:
        gw = Gateway(rt=rt, bus=bus, published=settings.data_dir / "published")
        for slug in ("acme", "globex"):
            await bus.call(CUSTOMER_ADD, CustomerAdd(slug=slug))
        await bus.call(WEBHOOK_ADD, EndpointAdd(customer="acme", url=closed))
        await bus.call(WEBHOOK_ADD, EndpointAdd(customer="globex", url=closed + "/globex"))
        await gw.publish_model(OWN[0])
        await gw.publish_model(OTHERS)

        async def tried() -> bool:
            acme = await bus.call(WEBHOOK_DELIVERIES, CustomerRef(customer="acme"))
            other = await bus.call(WEBHOOK_DELIVERIES, CustomerRef(customer="globex"))
            return bool(acme) and bool(other) and all(d.attempts >= 1 for d in acme)

        await eventually(tried, "deliveries tried for both customers", timeout=30)
        assert gw.svc.portal is not None
        _, token, _ = await gw.svc.portal.accounts.invite("acme", EMAIL, "ops", 1.0)
        await gw.svc.portal.accounts.accept(token, PASSWORD)
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
            assert (await sign_in(s, gw, PASSWORD)).status == 303
            async with s.get(f"{gw.url}/portal/webhooks") as r:
                text = await r.text()
                assert r.status == 200
        assert f"<code>{closed}</code>" in text and "/globex" not in text
        assert "model.published" in text and 'data-delivery="' in text
        assert "could not be read" not in text


async def test_the_customer_adds_and_removes_its_own_webhook_endpoints(settings: Settings, bus: Bus) -> None:
    """Through the catalog's webhook API, always for the session's customer; another customer's
    endpoint answers as not found and stays."""
    settings.raw["catalog"] = {"create_admin": False}
    settings.raw["token_gateway"] = {"port": 0}
    async with running_services(settings, ["catalog", "token_gateway"], http=False) as rt:
        gw = Gateway(rt=rt, bus=bus, published=settings.data_dir / "published")
        for slug in ("acme", "globex"):
            await bus.call(CUSTOMER_ADD, CustomerAdd(slug=slug))
        theirs = await bus.call(WEBHOOK_ADD, EndpointAdd(customer="globex", url="https://globex.example/h"))
        assert gw.svc.portal is not None
        _, token, _ = await gw.svc.portal.accounts.invite("acme", EMAIL, "ops", 1.0)
        await gw.svc.portal.accounts.accept(token, PASSWORD)
        url = "https://shop.example.com/hooks/foto3d"
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
            assert (await sign_in(s, gw, PASSWORD)).status == 303
            # a form naming another customer changes nothing: the session's customer is used
            async with s.post(f"{gw.url}/portal/webhooks", data={"url": url, "customer": "globex"}) as r:
                text = await r.text()
                assert r.status == 200, text
            found = re.search(r'<pre id="endpoint-secret">([^<]+)</pre>', text)
            assert found and len(found.group(1)) >= 16, text  # shown once, on creation
            mine = await bus.call(WEBHOOK_LIST, CustomerRef(customer="acme"))
            assert [(e.url, e.created_by) for e in mine] == [(url, f"portal:{EMAIL}")]
            assert [e.url for e in await bus.call(WEBHOOK_LIST, CustomerRef(customer="globex"))] == [
                "https://globex.example/h"
            ]
            async with s.get(f"{gw.url}/portal/webhooks") as r:
                text = await r.text()
            assert f'data-endpoint="{mine[0].endpoint_id}"' in text and f"<code>{url}</code>" in text
            assert "endpoint-secret" not in text  # never again
            # a bad address is the catalog's refusal, shown on the page
            async with s.post(f"{gw.url}/portal/webhooks", data={"url": "ftp://x.example"}) as r:
                assert r.status == 400
            # another customer's endpoint: not found, and it stays
            async with s.post(f"{gw.url}/portal/webhooks/{theirs.endpoint_id}/remove") as r:
                assert r.status == 404 and "globex.example" not in await r.text()
            left: list[EndpointView] = await bus.call(WEBHOOK_LIST, CustomerRef(customer="globex"))
            assert [e.endpoint_id for e in left] == [theirs.endpoint_id]
            # its own: removed
            async with s.post(
                f"{gw.url}/portal/webhooks/{mine[0].endpoint_id}/remove", allow_redirects=False
            ) as r:
                assert r.status == 303 and r.headers["Location"] == "/portal/webhooks"
            assert await bus.call(WEBHOOK_LIST, CustomerRef(customer="acme")) == []


async def test_the_customer_changes_its_viewer_settings_as_a_new_version_keeping_the_framing(
    settings: Settings, bus: Bus
) -> None:
    """Background, auto-rotate and poster from the model page: a new ``object.viewer/1`` version
    by the portal account, over staff's latest, whose framing stays; never for another's model."""
    settings.raw["catalog"] = {"create_admin": False}
    settings.raw["token_gateway"] = {"port": 0}
    async with running_services(settings, ["catalog", "token_gateway"], http=False) as rt:
        gw = Gateway(rt=rt, bus=bus, published=settings.data_dir / "published")
        catalog = next(s for s in rt.services if isinstance(s, CatalogService))
        ids = {}
        for slug in ("acme", "globex"):
            await bus.call(CUSTOMER_ADD, CustomerAdd(slug=slug))
            obj = await bus.call(REGISTER, RegisterObject(customer=slug, display_name="Desk lamp"))
            ids[slug] = obj.object_id
            await gw.publish_model(obj.object_id)
        mine, theirs = ids["acme"], ids["globex"]
        await eventually(
            lambda: gw.svc.parts and all(gw.svc.parts.index.get(o) for o in ids.values()), "models"
        )
        framing = {"camera": {"azimuth": 30.0, "elevation": 10.0, "distance": 1.2}, "rotation": [0, 90, 0]}
        await save_settings(catalog.parts, mine, {**framing, "auto_rotate": 12.0}, "framed", "rita")
        assert gw.svc.portal is not None
        _, token, _ = await gw.svc.portal.accounts.invite("acme", EMAIL, "ops", 1.0)
        await gw.svc.portal.accounts.accept(token, PASSWORD)
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
            assert (await sign_in(s, gw, PASSWORD)).status == 303
            async with s.get(f"{gw.url}/portal/models/{mine}") as r:
                text = await r.text()
                assert r.status == 200 and 'id="viewer-form"' in text, text
            # staff's speed shows as on, the poster as shown (the viewer's default)
            assert re.search(r'name="auto_rotate" checked', text) and re.search(
                r'name="poster" checked', text
            )
            form = {"background": "#102030", "auto_rotate": "on", "customer": "globex"}  # poster unticked
            async with s.post(f"{gw.url}/portal/models/{mine}/viewer", data=form) as r:
                text = await r.text()
                assert r.status == 200 and "Saved as version 2" in text, text
            versions = await saved_versions(catalog.parts.store, mine)
            assert [(v["version"], v["actor"]) for v in versions] == [(1, "rita"), (2, f"portal:{EMAIL}")]
            latest = versions[-1]["settings"]
            assert latest["camera"] == framing["camera"] and latest["rotation"] == framing["rotation"]
            assert latest["background"] == "#102030" and latest["ui"] == {"poster": False}
            assert latest["auto_rotate"] == 12.0  # "on" keeps staff's speed
            # the same again saves nothing new
            async with s.post(f"{gw.url}/portal/models/{mine}/viewer", data=form) as r:
                assert r.status == 200 and "Nothing changed" in await r.text()
            # a bad colour is refused
            async with s.post(f"{gw.url}/portal/models/{mine}/viewer", data={"background": "red;}"}) as r:
                assert r.status == 400
            # another customer's model: not found, nothing saved
            async with s.post(f"{gw.url}/portal/models/{theirs}/viewer", data=form) as r:
                assert r.status == 404
            assert len(await saved_versions(catalog.parts.store, mine)) == 2
        assert await saved_versions(catalog.parts.store, theirs) == []
        # the catalog checks the owner itself (the gateway asked for the wrong customer)
        ask = CustomerViewerRequest(object_id=theirs, customer="acme", background="#000", actor="portal:x")
        with pytest.raises(ServiceError) as info:
            await bus.call(CUSTOMER_VIEWER, ask)
        assert info.value.code == "404"
        assert await saved_versions(catalog.parts.store, theirs) == []


async def test_the_gateways_own_key_may_act_only_as_a_portal_account(settings: Settings, bus: Bus) -> None:
    """With the ``gateway`` role's key (as a deployed gateway signs): webhooks add/remove and
    customer-viewer go through, recorded as the portal account it names; naming staff is refused."""
    settings.raw["catalog"] = {"create_admin": False}
    async with running_services(settings, ["catalog"], http=False):
        await bus.call(CUSTOMER_ADD, CustomerAdd(slug="acme"))
        as_gateway = await connect(settings.nats_urls or [], "portal-gateway", creds=creds_for("gateway"))
        try:
            actor = f"portal:{EMAIL}"
            add = EndpointAdd(customer="acme", url="https://shop.example.com/h", actor=actor)
            made = await as_gateway.call(WEBHOOK_ADD, add)
            assert made.created_by == actor and made.secret
            with pytest.raises(ServiceError) as info:
                await as_gateway.call(WEBHOOK_ADD, msgspec.structs.replace(add, actor="maria"))
            assert info.value.code == FORBIDDEN
            removed = await as_gateway.call(
                WEBHOOK_REMOVE, EndpointRef(endpoint_id=made.endpoint_id, actor=actor)
            )
            assert removed.endpoint_id == made.endpoint_id
            # allowed and proven: the catalog itself answers (no such object here)
            ask = CustomerViewerRequest(
                object_id="acme-nothing-001", customer="acme", poster=False, actor=actor
            )
            with pytest.raises(ServiceError) as info:
                await as_gateway.call(CUSTOMER_VIEWER, ask)
            assert info.value.code == "404", info.value.description
        finally:
            await as_gateway.close()
