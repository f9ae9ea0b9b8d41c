"""The viewer on the customer listener: the bundle, the iframe page ``/embed/{object_id}?key=pk_…``
and its signed pass, in a real browser inside a real customer page on another origin."""

from __future__ import annotations

import hashlib
import html
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import aiohttp
import msgspec
import pytest
from aiohttp import web

from foto3d.libs.config import Settings
from foto3d.libs.splat import write as write_splat
from foto3d.libs.splat.synthetic import synthetic_object
from foto3d.libs.viewer import assets
from foto3d.libs.viewer.config import ViewerFile, build_viewer_config, file_up
from foto3d.proto.gateway import STAFF_MODEL_PAGE, CredentialKind
from foto3d.proto.objects import LiveStatus, ObjectPublished, ObjectRegistered, PublishedFile
from testkit.running import running_services
from testkit.signin import sign_in_browser, staff_cookie
from testkit.site import local_site
from testkit.waiting import eventually
from tests.token_gateway.helpers import Gateway, get
from tests.viewer.pixels import canvas_rgb, object_mask

pytestmark = pytest.mark.timeout(240)
OID = "acme-vase-001"
BACKGROUND = (238, 240, 243)  # the viewer's default background (#eef0f3)
VIEWER = "document.querySelector('foto3d-viewer')"


async def publish_real(gw: Gateway, object_id: str) -> None:
    """A real splat as the publisher lays it out: .ply and .spz, viewer.json with each file's up axis."""
    splat = synthetic_object(8000, sh_degree=1, seed=7)
    customer = object_id.split("-", 1)[0]
    prefix = f"models/{customer}/{object_id}/v1"
    folder = gw.published / prefix
    folder.mkdir(parents=True, exist_ok=True)
    files: list[PublishedFile] = []
    viewer_files: list[ViewerFile] = []
    for fmt in ("ply", "spz"):
        path = folder / f"{object_id}.{fmt}"
        write_splat(splat, path)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        size = path.stat().st_size
        key = f"{prefix}/{path.name}"
        files.append(
            PublishedFile(kind="splat", format=fmt, key=key, url="", bytes=size, sha256=digest,
                          content_type="application/octet-stream", up=file_up(fmt))
        )  # fmt: skip
        viewer_files.append(ViewerFile(format=fmt, url="", bytes=size, sha256=digest, up=file_up(fmt)))
    config = build_viewer_config(splat, object_id=object_id, name="Vase", model_version=1, files=viewer_files)
    data = msgspec.json.encode(config)
    (folder / "viewer.json").write_bytes(data)
    files.append(
        PublishedFile(kind="viewer_config", format="json", key=f"{prefix}/viewer.json", url="",
                      bytes=len(data), sha256=hashlib.sha256(data).hexdigest(), content_type="application/json")
    )  # fmt: skip
    now = time.time()
    await gw.event(
        ObjectRegistered(event_id=f"reg-{object_id}", object_id=object_id, ts=now, customer=customer,
                         display_name="Vase", slug=object_id, serial=1)
    )  # fmt: skip
    await gw.event(
        ObjectPublished(event_id=f"pub-{object_id}", object_id=object_id, ts=now, version=1, job_id="job-1",
                        live_url="", files=files)
    )  # fmt: skip
    await gw.status(object_id, LiveStatus.PRODUCTION)


@asynccontextmanager
async def customer_site() -> AsyncIterator[str]:
    """A shop page on its own origin that frames whatever ``?src=`` names."""

    async def shop(request: web.Request) -> web.Response:
        src = html.escape(request.query["src"], quote=True)
        body = f'<!doctype html><html><body style="margin:0"><iframe src="{src}" width="800" height="600" style="border:0"></iframe></body></html>'
        return web.Response(text=body, content_type="text/html")

    app = web.Application()
    app.router.add_get("/shop", shop)
    async with local_site(app, "127.0.0.1") as port:
        yield f"http://127.0.0.1:{port}"


async def viewer_frame(page: Any) -> Any:
    handle = await page.wait_for_selector("iframe")
    frame = await handle.content_frame()
    await frame.wait_for_function(
        f"() => ['ready', 'unavailable'].includes({VIEWER}?.state)", timeout=120_000
    )
    return frame


@pytest.fixture
def bundle() -> assets.ViewerBundle:
    try:
        return assets.load_bundle()
    except assets.ViewerBundleMissing as exc:
        pytest.fail(str(exc))


async def test_embed_renders_in_a_customer_page_and_a_disabled_model_shows_the_card(
    gateway: Gateway, page: Any, bundle: assets.ViewerBundle
) -> None:
    await publish_real(gateway, OID)
    async with customer_site() as shop:
        key = await gateway.issue("acme", CredentialKind.PUBLISHABLE, origins=[shop])
        embed_url = f"{gateway.url}/embed/{OID}?key={key}"
        async with aiohttp.ClientSession() as s:

            async def answered() -> bool:
                st, _, _ = await get(s, f"{gateway.url}/v1/models/{OID}?key={key}", headers={"Origin": shop})
                return st == 200

            await eventually(answered, "the published model to reach the gateway")
            # the model reply carries each file's up axis (the trainer's +Z-up data as each file stores it)
            _, body, _ = await get(s, f"{gateway.url}/v1/models/{OID}?key={key}", headers={"Origin": shop})
            assert {f["format"]: f["up"] for f in body["files"]} == {"ply": "z", "spz": "-z"}

        await page.goto(f"{shop}/shop?src={quote(embed_url)}")
        frame = await viewer_frame(page)
        assert await frame.evaluate(f"{VIEWER}.state") == "ready"
        await frame.wait_for_function(f"() => {VIEWER}.idle", timeout=120_000)
        assert object_mask(await canvas_rgb(frame), BACKGROUND).mean() > 0.02  # the vase, not a blank canvas
        assert await frame.evaluate(f"{VIEWER}.file.up") == "-z"  # the smallest file, with its up axis

        await gateway.status(OID, LiveStatus.DISABLED)
        async with aiohttp.ClientSession() as s:

            async def refused() -> bool:
                st, _, _ = await get(s, f"{gateway.url}/v1/models/{OID}?key={key}", headers={"Origin": shop})
                return st == 404

            await eventually(refused, "the disabled model to be refused")
        await page.goto(f"{shop}/shop?src={quote(embed_url)}")
        frame = await viewer_frame(page)
        assert await frame.evaluate(f"{VIEWER}.state") == "unavailable"
        card = frame.locator("foto3d-viewer .card")
        assert await card.is_visible()
        assert "Not available" in await card.inner_text()


async def test_embed_checks_the_embedding_page_and_its_pass_is_bound(
    gateway: Gateway, bundle: assets.ViewerBundle
) -> None:
    await gateway.publish_model("acme-desk-lamp-001")
    await gateway.publish_model("acme-chair-002")
    shop = "https://shop.example.com"
    key = await gateway.issue("acme", CredentialKind.PUBLISHABLE, origins=[shop])
    async with aiohttp.ClientSession() as s:

        async def answered() -> bool:
            st, _, _ = await get(
                s, f"{gateway.url}/v1/models/acme-chair-002?key={key}", headers={"Origin": shop}
            )
            return st == 200

        await eventually(answered, "the published models to reach the gateway")
        url = f"{gateway.url}/embed/acme-desk-lamp-001?key={key}"
        # framed by a page of another site (or with no Referer at all): refused
        for headers in ({"Referer": "https://evil.example.net/page"}, {}):
            st, body, _ = await get(s, url, headers=headers)
            # as the viewer's card (the iframe shows it), the reason for the developer's console
            assert st == 403 and b"Not available" in body and b"HTTP 403 forbidden" in body, body
        # a secret token does not open the embed page (it would hand a browser a pass)
        secret = await gateway.issue("acme")
        st, body, _ = await get(
            s, f"{gateway.url}/embed/acme-desk-lamp-001", headers={"Authorization": f"Bearer {secret}"}
        )
        assert st == 403 and b"publishable" in body, body
        st, page, h = await get(s, url, headers={"Referer": f"{shop}/products/lamp"})
        assert st == 200 and h["Content-Security-Policy"] == f"frame-ancestors {shop}"
        assert h["Cache-Control"] == "no-store"
        text = page.decode()
        assert f'src="/viewer/{bundle.file}"' in text and f'integrity="{bundle.sri}"' in text
        # Spark's WebAssembly, preloaded beside the bundle so that both download together
        assert f'<link rel="preload" href="/viewer/{bundle.wasm.file}" as="fetch"' in text
        assert key not in text  # the page hands the viewer a pass, not the key
        api = text.split(' api="', 1)[1].split('"', 1)[0]
        assert api.startswith("/embed-api/")

        # the pass answers for its own object, from the gateway's own origin (no Origin/Referer check)
        st, body, _ = await get(s, f"{gateway.url}{api}/v1/models/acme-desk-lamp-001")
        assert st == 200 and body["object_id"] == "acme-desk-lamp-001", body
        st, data, _ = await get(s, body["files"][0]["url"])
        assert st == 200 and len(data) == body["files"][0]["bytes"]
        # ... and for no other object, and not once edited
        st, body, _ = await get(s, f"{gateway.url}{api}/v1/models/acme-chair-002")
        assert st == 403, body
        tampered = api[:-3] + ("AAA" if not api.endswith("AAA") else "BBB")
        st, body, _ = await get(s, f"{gateway.url}{tampered}/v1/models/acme-desk-lamp-001")
        assert st == 403, body
        st, body, _ = await get(s, f"{gateway.url}/embed-api/nonsense/v1/models/acme-desk-lamp-001")
        assert st == 403, body

        # the bundle itself: its versioned name only, cached for good
        st, data, h = await get(s, f"{gateway.url}/viewer/{bundle.file}")
        assert st == 200 and data == bundle.path.read_bytes() and "immutable" in h["Cache-Control"]
        # ... and Spark's WebAssembly beside it, as WebAssembly.compileStreaming requires
        st, data, h = await get(s, f"{gateway.url}/viewer/{bundle.wasm.file}")
        assert st == 200 and data == bundle.wasm.path.read_bytes() and "immutable" in h["Cache-Control"]
        assert h["Content-Type"] == "application/wasm" and h["Access-Control-Allow-Origin"] == "*"
        st, _, _ = await get(s, f"{gateway.url}/viewer/other.js")
        assert st == 404
        st, _, _ = await get(s, f"{gateway.url}/viewer/spark-0.0.0.000000000000.wasm")
        assert st == 404


async def test_staff_page_of_a_live_model_draws_it_behind_sign_in(
    gateway: Gateway, settings: Settings, page: Any, bundle: assets.ViewerBundle
) -> None:
    await publish_real(gateway, OID)
    dashboard = gateway.rt.http_url
    path = STAFF_MODEL_PAGE.format(object_id=OID)
    async with aiohttp.ClientSession() as s:
        st, _, h = await get(s, f"{dashboard}{path}", allow_redirects=False)
        assert st == 302 and h["Location"].startswith("/login")  # staff only
        st, _, _ = await get(s, f"{dashboard}{path}/files/{OID}.spz", allow_redirects=False)
        assert st == 302
    cookies = await staff_cookie(settings)
    async with aiohttp.ClientSession(cookies=cookies) as s:

        async def shown() -> bool:
            st, _, _ = await get(s, f"{dashboard}{path}")
            return st == 200

        await eventually(shown, "the published model to reach the gateway")
        st, body, _ = await get(s, f"{dashboard}{path}")
        text = body.decode()
        assert f'src="{path}/files/{OID}.spz"' in text and f"{gateway.url}/embed/{OID}?key=pk_" in text
        st, data, _ = await get(s, f"{dashboard}{path}/files/{OID}.spz")
        assert st == 200 and data == (gateway.published / f"models/acme/{OID}/v1/{OID}.spz").read_bytes()
        st, _, _ = await get(s, f"{dashboard}{path}/files/other.spz")
        assert st == 404
        st, _, _ = await get(s, f"{dashboard}{STAFF_MODEL_PAGE.format(object_id='acme-never-009')}")
        assert st == 404

    await sign_in_browser(page, settings, dashboard)
    await page.goto(f"{dashboard}{path}")
    # the two ways to embed, each ready to copy: the pinned module + element, and the iframe
    snippets = await page.locator("pre.snippet").all_inner_texts()
    module = next(t for t in snippets if "<foto3d-viewer" in t)
    assert f'src="{gateway.url}/viewer/{bundle.file}"' in module and f'integrity="{bundle.sri}"' in module
    assert f'model="{OID}"' in module and f'api="{gateway.url}"' in module and 'key="pk_' in module
    assert any("<iframe" in t and f"{gateway.url}/embed/{OID}?key=pk_" in t for t in snippets)
    for width in (1280, 420):  # no snippet line makes the page wider than the screen
        await page.set_viewport_size({"width": width, "height": 860})
        wide = await page.evaluate("() => document.documentElement.scrollWidth")
        assert wide <= width, f"{wide} px wide at {width} px"
    await page.set_viewport_size({"width": 1280, "height": 860})
    await page.wait_for_function(f"() => {VIEWER}?.state === 'ready'", timeout=120_000)
    await page.wait_for_function(f"() => {VIEWER}.idle", timeout=120_000)
    assert await page.evaluate(f"{VIEWER}.config.up") == "-z"
    assert object_mask(await canvas_rgb(page), BACKGROUND).mean() > 0.02
    await gateway.status(OID, LiveStatus.DISABLED)

    async def marked_disabled() -> bool:
        await page.goto(f"{dashboard}{path}")
        return bool((await page.text_content(".model-status")) == "disabled")

    await eventually(marked_disabled, "the page to show the model disabled")


async def refused_frame(page: Any, shop: str, embed_url: str) -> tuple[str, list[str]]:
    """The text the iframe shows for ``embed_url`` inside the shop page, and the console's words."""
    said: list[str] = []
    page.on("console", lambda m: said.append(m.text))
    await page.goto(f"{shop}/shop?src={quote(embed_url)}")
    handle = await page.wait_for_selector("iframe")
    frame = await handle.content_frame()
    await frame.get_by_text("Not available").wait_for(timeout=10_000)
    await frame.wait_for_load_state("load")
    return await frame.locator("body").inner_text(), said


async def test_a_refused_embed_shows_the_card_not_json(settings: Settings, bus: Any, page: Any) -> None:
    """Refusals a shop visitor can meet in the iframe (a key not for this site, a busy shared
    address) render as the viewer's card, with the reason in the console for the developer."""
    settings.raw["token_gateway"] = {"port": 0, "ip_rate": 0.001, "ip_burst": 4}
    async with running_services(settings, ["token_gateway"], http=True) as rt:
        gw = Gateway(rt=rt, bus=bus, published=settings.data_dir / "published")
        async with customer_site() as shop:
            key = await gw.issue("acme", CredentialKind.PUBLISHABLE, origins=["https://other.example.com"])
            text, said = await refused_frame(page, shop, f"{gw.url}/embed/{OID}?key={key}")
            assert "Not available" in text and "error" not in text, text
            assert any("foto3d embed: HTTP 403" in s for s in said), said
            # the address's burst is spent (4 requests): the next iframe is rate limited
            async with aiohttp.ClientSession() as s:
                while (await get(s, f"{gw.url}/healthz"))[0] != 429:
                    pass
            text, said = await refused_frame(page, shop, f"{gw.url}/embed/{OID}?key={key}")
            assert "Not available" in text and "rate_limited" not in text, text
            assert any("HTTP 429 rate_limited" in s for s in said), said


async def test_an_embed_whose_bundle_is_refused_shows_the_card(
    settings: Settings, bus: Any, page: Any
) -> None:
    """The page is answered but the viewer bundle is not (the address's one request is spent):
    the frame shows the card, not an empty page."""
    settings.raw["token_gateway"] = {"port": 0, "ip_rate": 0.001, "ip_burst": 1}
    async with running_services(settings, ["token_gateway"], http=True) as rt:
        gw = Gateway(rt=rt, bus=bus, published=settings.data_dir / "published")
        async with customer_site() as shop:
            key = await gw.issue("acme", CredentialKind.PUBLISHABLE, origins=[shop])
            text, said = await refused_frame(page, shop, f"{gw.url}/embed/{OID}?key={key}")
            assert "Not available" in text, text
            assert any("viewer bundle could not be loaded" in s for s in said), said
