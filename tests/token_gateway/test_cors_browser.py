"""The bucket's CORS rule, seen by a browser: the gateway in S3 mode, a shop page on another
origin, the model files fetched from presigned links on an S3 endpoint that enforces the rule
(``testkit.cors_s3``; moto's server lets any origin read, so it cannot tell).

A shop whose publishable key names its origin draws the model (the picture is checked). A page
on an origin no key names, given a valid presigned link, is refused by the bucket: its fetch
fails as a CORS error and the viewer shows its card; so is the first shop once its key is
revoked and its origin leaves the rule. With the gateway's sync off, the first shop's page
shows the card too: the test cannot pass on a bucket without the rule.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
from aiohttp import web
from botocore.exceptions import ClientError

from foto3d.libs.bus.connection import Bus
from foto3d.libs.config import Settings
from foto3d.libs.splat import write as write_splat
from foto3d.libs.splat.synthetic import synthetic_object
from foto3d.libs.viewer import assets
from foto3d.libs.viewer.config import ViewerFile, build_viewer_config, file_up
from foto3d.proto.gateway import TOKENS_ISSUE, TOKENS_REVOKE, CredentialKind, IssueRequest, RevokeRequest
from foto3d.proto.objects import LiveStatus, ObjectPublished, ObjectRegistered, PublishedFile
from foto3d.services.token_gateway.bucket_cors import RULE_ID
from testkit.cors_s3 import CorsS3Server
from testkit.running import running_services
from testkit.site import local_site
from testkit.waiting import eventually
from tests.token_gateway.helpers import Gateway, get
from tests.viewer.pixels import canvas_rgb, object_mask

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]
BUCKET = "models"
PREFIX = "site"
OID = "acme-vase-001"
BACKGROUND = (238, 240, 243)  # the viewer's default background (#eef0f3)
VIEWER = "document.querySelector('foto3d-viewer')"
SETTLED = f"() => ['ready', 'unavailable'].includes({VIEWER}?.state)"


def _s3_mode(settings: Settings, s3: CorsS3Server, *, sync: bool = True) -> None:
    s3.client().create_bucket(Bucket=BUCKET)
    settings.raw["publisher"] = {
        "bucket": BUCKET,
        "prefix": PREFIX,
        "endpoint_url": s3.url,
        "region": "us-east-1",
    }
    settings.raw["token_gateway"] = {"port": 0, "bucket_cors": sync}


async def _publish_to_s3(gw: Gateway, s3: CorsS3Server, folder: Path) -> None:
    """A real splat in the bucket as the publisher lays it out (.ply, .spz, viewer.json), announced."""
    client = s3.client()
    splat = synthetic_object(8000, sh_degree=1, seed=7)
    prefix = f"models/acme/{OID}/v1"
    files: list[PublishedFile] = []
    viewer_files: list[ViewerFile] = []
    for fmt in ("ply", "spz"):
        path = folder / f"{OID}.{fmt}"
        write_splat(splat, path)
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        client.put_object(Bucket=BUCKET, Key=f"{PREFIX}/{prefix}/{path.name}", Body=data)
        files.append(
            PublishedFile(kind="splat", format=fmt, key=f"{prefix}/{path.name}", url="", bytes=len(data),
                          sha256=digest, content_type="application/octet-stream", up=file_up(fmt))
        )  # fmt: skip
        viewer_files.append(ViewerFile(format=fmt, url="", bytes=len(data), sha256=digest, up=file_up(fmt)))
    config = msgspec.json.encode(
        build_viewer_config(splat, object_id=OID, name="Vase", model_version=1, files=viewer_files)
    )
    client.put_object(Bucket=BUCKET, Key=f"{PREFIX}/{prefix}/viewer.json", Body=config)
    files.append(
        PublishedFile(kind="viewer_config", format="json", key=f"{prefix}/viewer.json", url="",
                      bytes=len(config), sha256=hashlib.sha256(config).hexdigest(),
                      content_type="application/json")
    )  # fmt: skip
    now = time.time()
    await gw.event(
        ObjectRegistered(event_id="reg", object_id=OID, ts=now, customer="acme", display_name="Vase",
                         slug=OID, serial=1)
    )  # fmt: skip
    await gw.event(
        ObjectPublished(
            event_id="pub", object_id=OID, ts=now, version=1, job_id="job-1", live_url="", files=files
        )
    )
    await gw.status(OID, LiveStatus.PRODUCTION)


@asynccontextmanager
async def _shop() -> AsyncIterator[tuple[str, dict[str, str]]]:
    """A shop on its own origin; its product page holds whatever ``html["body"]`` says."""
    html: dict[str, str] = {}

    async def product(_request: web.Request) -> web.Response:
        body = (
            '<!doctype html><html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,">'
            f'<title>Vase</title></head><body style="margin:0">{html.get("body", "")}</body></html>'
        )
        return web.Response(text=body, content_type="text/html")

    app = web.Application()
    app.router.add_get("/product", product)
    async with local_site(app) as port:
        yield f"http://127.0.0.1:{port}", html


def _embed(gw: Gateway, key: str) -> str:
    bundle = assets.bundle()
    return assets.embed_snippet(
        object_id=OID, api_base=gw.url, key=key, bundle_url=f"{gw.url}/viewer/{bundle.file}", sri=bundle.sri
    )


def _direct(gw: Gateway, link: str) -> str:
    """The viewer pointed straight at a presigned link, as a page holding one would use it."""
    bundle = assets.bundle()
    tag = assets.viewer_tag(src=link, options={"format": "spz"})
    sized = tag.replace("><", ' style="display:block;width:100%;height:480px"><', 1)
    return assets.script_tag(f"{gw.url}/viewer/{bundle.file}", bundle.sri) + sized


class Visit:
    """One page load in a fresh browser context (no cached S3 answer from an earlier visit):
    the console's CORS errors, the presigned S3 links it fetched or failed to fetch, and any
    uncaught script error (``errors``: a refusal must not crash the page; the refused fetch's own
    "Failed to fetch" may surface uncaught from Spark's reader of the stream, and is left out)."""

    def __init__(self, page: Any, s3: CorsS3Server) -> None:
        self.page = page
        self.s3 = s3
        self.cors_errors: list[str] = []
        self.fetched: list[str] = []
        self.failed: list[str] = []
        self.errors: list[str] = []
        self.drawn = 0.0  # share of the canvas that is not background
        self.card = ""

    async def open(self, url: str) -> str:
        context = await self.page.context.browser.new_context(viewport={"width": 1280, "height": 860})
        pg = await context.new_page()
        pg.on("console", self._console)
        pg.on("requestfinished", lambda r: self._request(r.url, self.fetched))
        pg.on("requestfailed", lambda r: self._request(r.url, self.failed))
        pg.on("pageerror", self._error)
        try:
            await pg.goto(url)
            await pg.wait_for_function(SETTLED, timeout=120_000)
            state: str = await pg.evaluate(f"{VIEWER}.state")
            if state == "ready":
                await pg.wait_for_function(f"() => {VIEWER}.idle", timeout=120_000)
            else:
                self.card = await pg.locator("foto3d-viewer .card").inner_text()
            self.drawn = float(object_mask(await canvas_rgb(pg), BACKGROUND).mean())
            return state
        finally:
            await context.close()

    def _error(self, exc: Any) -> None:
        if str(exc) != "Failed to fetch":
            self.errors.append(str(exc))

    def _console(self, msg: Any) -> None:
        if "CORS policy" in msg.text:
            self.cors_errors.append(msg.text)

    def _request(self, url: str, into: list[str]) -> None:
        if url.startswith(self.s3.url) and "X-Amz-Signature" in url:
            into.append(url)


async def _link(gw: Gateway, token: str) -> str:
    """A presigned link to the model's .spz, as the gateway hands it to a customer's server."""
    async with aiohttp.ClientSession() as s:
        st, body, _ = await get(s, f"{gw.url}/v1/models/{OID}", headers={"Authorization": f"Bearer {token}"})
    assert st == 200, body
    return next(str(f["url"]) for f in body["files"] if f["format"] == "spz")


async def _served(gw: Gateway, token: str) -> bool:
    async with aiohttp.ClientSession() as s:
        status, _, _ = await get(s, f"{gw.url}/v1/models/{OID}", headers={"Authorization": f"Bearer {token}"})
    return status == 200


async def test_the_bucket_rule_decides_which_shop_pages_draw_the_model(
    settings: Settings, bus: Bus, cors_s3_server: CorsS3Server, page: Any, tmp_path: Path
) -> None:
    s3 = cors_s3_server
    _s3_mode(settings, s3)
    async with running_services(settings, ["token_gateway"], http=False) as rt:
        gw = Gateway(rt=rt, bus=bus, published=tmp_path)
        await _publish_to_s3(gw, s3, tmp_path)
        server_token = await gw.issue("acme")
        await eventually(lambda: _served(gw, server_token), "the published model at the gateway", timeout=30)
        cors = gw.svc.cors
        assert cors is not None
        async with _shop() as (shop, shop_page), _shop() as (other, other_page):
            issued = await bus.call(
                TOKENS_ISSUE, IssueRequest(customer="acme", kind=CredentialKind.PUBLISHABLE, origins=[shop])
            )
            key = issued.token
            # the gateway's own word that the rule is in place; the browser below checks the bucket
            await eventually(
                lambda: cors.origins == [shop], "the gateway to verify the shop's rule", timeout=30
            )

            # 1. The shop's page draws the model from presigned links to the bucket.
            shop_page["body"] = _embed(gw, key)
            visit = Visit(page, s3)
            assert await visit.open(f"{shop}/product") == "ready"
            assert visit.drawn > 0.02, f"the shop's viewer drew a blank picture ({visit.drawn:.4f} of it)"
            assert visit.fetched and not visit.failed and not visit.cors_errors and not visit.errors

            # 2. A page on an origin no key names, holding a valid link: the bucket refuses it.
            link = await _link(gw, server_token)
            other_page["body"] = _direct(gw, link)
            visit = Visit(page, s3)
            assert await visit.open(f"{other}/product") == "unavailable"
            assert visit.failed and visit.cors_errors, "the S3 fetch should fail as a CORS error"
            assert "Not available" in visit.card and visit.drawn < 0.005 and not visit.errors

            # 3. The shop's key revoked: its origin leaves the rule, and a link it still holds fails.
            await bus.call(TOKENS_REVOKE, RevokeRequest(credential_id=issued.credential.credential_id))
            await eventually(
                lambda: cors.origins == [], "the revoked key's origin to leave the rule", timeout=30
            )
            assert _rules(s3) == []
            shop_page["body"] = _direct(gw, await _link(gw, server_token))
            visit = Visit(page, s3)
            assert await visit.open(f"{shop}/product") == "unavailable"
            assert visit.failed and visit.cors_errors and not visit.errors


async def test_without_the_gateways_rule_the_shop_page_shows_the_card(
    settings: Settings, bus: Bus, cors_s3_server: CorsS3Server, page: Any, tmp_path: Path
) -> None:
    """The check above can fail: with the sync off and no rule on the bucket, the key's own
    shop gets valid links from the gateway and still cannot read them."""
    s3 = cors_s3_server
    _s3_mode(settings, s3, sync=False)
    async with running_services(settings, ["token_gateway"], http=False) as rt:
        gw = Gateway(rt=rt, bus=bus, published=tmp_path)
        assert gw.svc.cors is None
        await _publish_to_s3(gw, s3, tmp_path)
        async with _shop() as (shop, shop_page):
            key = await gw.issue("acme", CredentialKind.PUBLISHABLE, origins=[shop])
            server_token = await gw.issue("acme")
            await eventually(
                lambda: _served(gw, server_token), "the published model at the gateway", timeout=30
            )
            shop_page["body"] = _embed(gw, key)
            visit = Visit(page, s3)
            assert await visit.open(f"{shop}/product") == "unavailable"
            assert visit.failed and visit.cors_errors and not visit.errors
            assert _rules(s3) == []


def _rules(s3: CorsS3Server) -> list[Any]:
    """The gateway's rule as the bucket holds it."""
    try:
        return [r for r in s3.client().get_bucket_cors(Bucket=BUCKET)["CORSRules"] if r.get("ID") == RULE_ID]
    except ClientError:
        return []
