"""How the viewer reaches a phone: the model and Spark's WebAssembly download alongside the
bundle, not after it; both files go out brotli-compressed (gzip where brotli is not accepted) and
within their budget."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from foto3d.libs.viewer import assets
from tests.viewer.site import Site, tag

pytestmark = pytest.mark.timeout(240)

# The bundle's and Spark's WebAssembly's bytes as docs/viewer.md states them, with a little
# room: a change that grows either past these must say why (and update the docs). The bundle
# carried the WebAssembly as base64 until it became a file of its own (3,073,561 raw, 1,032,166
# gzip, 769,614 brotli): that build fails the bundle's budget.
BUDGET = {"raw": 860_000, "gzip": 225_000, "br": 185_000}
WASM_BUDGET = {"raw": 1_700_000, "gzip": 580_000, "br": 420_000}
# what a phone downloads of the viewer's code, brotli: bundle and WebAssembly together
TOTAL_BR_BUDGET = 600_000

# Slow enough that the bundle (about 1 MB gzip) takes seconds to arrive, as on a phone.
THROTTLE = {"offline": False, "latency": 40, "downloadThroughput": 500_000, "uploadThroughput": 200_000}


def _sizes(path: Path) -> dict[str, int]:
    return {
        "raw": path.stat().st_size,
        "gzip": path.with_name(path.name + ".gz").stat().st_size,
        "br": path.with_name(path.name + ".br").stat().st_size,
    }


def test_the_bundle_and_its_webassembly_stay_within_their_budget() -> None:
    b = assets.bundle()
    sizes, wasm = _sizes(b.path), _sizes(b.wasm.path)
    over = {k: (v, BUDGET[k]) for k, v in sizes.items() if v > BUDGET[k]}
    assert not over, f"the viewer bundle is over its budget (bytes, budget): {over}"
    over = {k: (v, WASM_BUDGET[k]) for k, v in wasm.items() if v > WASM_BUDGET[k]}
    assert not over, f"Spark's WebAssembly is over its budget (bytes, budget): {over}"
    assert sizes["br"] + wasm["br"] <= TOTAL_BR_BUDGET


def test_the_bundle_carries_no_inline_webassembly() -> None:
    """Spark's module inlines its WebAssembly as base64; the build moves it to its own file."""
    b = assets.bundle()
    code = b.path.read_bytes()
    assert base64.b64encode(b"\0asm\x01\0\0\0")[:10] not in code, "the WebAssembly is back inside the bundle"
    assert b.wasm.file.encode() in code and b.wasm.sri.encode() in code
    assert b.wasm.path.read_bytes()[:4] == b"\0asm"


@pytest.mark.parametrize("which", ["bundle", "wasm"])
@pytest.mark.parametrize(("accept", "encoding"), [("gzip, deflate, br", "br"), ("gzip, deflate", "gzip")])
async def test_the_bundle_and_its_webassembly_are_served_brotli_with_gzip_as_fallback(
    site: Site, accept: str, encoding: str, which: str
) -> None:
    b = assets.bundle()
    path = b.path if which == "bundle" else b.wasm.path
    async with (
        aiohttp.ClientSession(auto_decompress=False) as http,
        http.get(f"{site.base}/viewer/{path.name}", headers={"Accept-Encoding": accept}) as r,
    ):
        body = await r.read()
    assert r.status == 200 and r.headers.get("Content-Encoding") == encoding
    assert len(body) == path.with_name(f"{path.name}.{'br' if encoding == 'br' else 'gz'}").stat().st_size
    assert "Accept-Encoding" in r.headers.get("Vary", ""), "caches must keep the encodings apart"
    assert r.headers["Cache-Control"] == assets.IMMUTABLE
    assert r.headers["Access-Control-Allow-Origin"] == "*", "a shop page fetches both across origins"
    # WebAssembly.compileStreaming accepts nothing but application/wasm
    wanted = "text/javascript" if which == "bundle" else "application/wasm"
    assert r.headers["Content-Type"].startswith(wanted)


def model_answer(site: Site) -> dict[str, Any]:
    size = (site.files_dir / "clean.spz").stat().st_size
    return {
        "object_id": "acme-vase-003",
        "name": "Vase",
        "status": "production",
        "model_version": 1,
        "config": {},
        "files": [
            {
                "format": "spz",
                "url": f"{site.base}/files/clean.spz",
                "bytes": size,
                "content_type": "application/octet-stream",
                "sha256": "",
            }
        ],
        "poster_url": None,
        "expires_at": "2099-01-01T00:00:00Z",
    }


async def test_the_model_downloads_while_the_bundle_is_still_arriving(page: Any, site: Site) -> None:
    site.models["acme-vase-003"] = model_answer(site)
    cdp = await page.context.new_cdp_session(page)
    await cdp.send("Network.enable")
    await cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})
    await cdp.send("Network.emulateNetworkConditions", THROTTLE)
    await page.goto(f"{site.base}/embed/acme-vase-003?key=pk_test")
    await page.wait_for_function(
        "() => document.querySelector('foto3d-viewer')?.state === 'ready'", timeout=120_000
    )
    entries = await page.evaluate(
        "() => performance.getEntriesByType('resource')"
        ".map(e => ({name: e.name, start: e.startTime, end: e.responseEnd}))"
    )
    bundle = [e for e in entries if "/viewer/foto3d-viewer-" in e["name"]]
    model = [e for e in entries if e["name"].endswith("/files/clean.spz")]
    api = [e for e in entries if "/v1/models/acme-vase-003" in e["name"]]
    wasm = [e for e in entries if e["name"].endswith("/viewer/" + assets.bundle().wasm.file)]
    assert len(bundle) == 1 and len(model) == 1 and len(api) == 1, f"each fetched once: {entries}"
    # once: the page's preload is the bundle's own fetch (a mismatch would fetch it twice)
    assert len(wasm) == 1, f"Spark's WebAssembly fetched {len(wasm)} times: {entries}"
    assert wasm[0]["start"] < bundle[0]["end"], (
        f"Spark's WebAssembly was asked for at {wasm[0]['start']:.0f} ms, after the bundle had"
        f" arrived ({bundle[0]['end']:.0f} ms)"
    )
    assert len(site.requests) == 1, f"the model API was asked more than once: {site.requests}"
    assert model[0]["start"] < bundle[0]["end"], (
        f"the model request began at {model[0]['start']:.0f} ms, after the bundle had arrived"
        f" ({bundle[0]['end']:.0f} ms)"
    )


async def test_without_its_webassembly_the_viewer_shows_the_card(page: Any, site: Site) -> None:
    """Spark waits for ever without its WebAssembly: a failed fetch must end in the card, with
    the reason in the console and no unhandled error (the page fixture fails on one)."""
    wasm = assets.bundle().wasm.file
    await page.route(f"**/viewer/{wasm}", lambda route: route.fulfill(status=404, body="gone"))
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type in ("error", "warning") else None)
    await page.goto(site.page_url(tag(src=f"{site.base}/files/clean.spz")))
    await page.wait_for_function(
        "() => document.querySelector('foto3d-viewer')?.state === 'unavailable'", timeout=60_000
    )
    assert await page.locator("foto3d-viewer .card").is_visible()
    assert any(e.startswith("foto3d-viewer: Spark's WebAssembly") for e in errors), errors
    assert not [e for e in errors if "preload" in e], "the page's preload and the bundle's fetch differ"
