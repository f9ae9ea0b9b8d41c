"""The bundle as served: versioned name, immutable caching, SRI; the embed page and snippet."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from foto3d.libs.viewer import assets
from tests.viewer.site import Site


def test_a_bundle_that_does_not_match_its_manifest_is_refused(tmp_path: Path) -> None:
    b = assets.bundle()
    dist = tmp_path / "dist"
    shutil.copytree(assets.DIST_DIR, dist)
    assert assets.load_bundle(dist).sri == b.sri
    with open(dist / b.file, "ab") as f:
        f.write(b"\n// edited by hand\n")
    with pytest.raises(assets.ViewerBundleMissing, match="does not match its manifest"):
        assets.load_bundle(dist)
    with pytest.raises(assets.ViewerBundleMissing, match="make viewer"):
        assets.load_bundle(tmp_path / "nowhere")


async def test_bundle_is_served_immutable_under_its_hashed_name(site: Site) -> None:
    b = assets.bundle()
    assert b.file.startswith("foto3d-viewer-") and b.sri.startswith("sha384-")
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{site.base}/viewer/{b.file}") as r:
            body = await r.read()
            assert r.status == 200 and r.headers["Cache-Control"] == "public, max-age=31536000, immutable"
            assert r.headers["Content-Type"].startswith("text/javascript")
            assert r.headers.get("Content-Encoding") in ("gzip", "br")  # precompressed by the build
        assert assets.sri_of(body) == b.sri
        async with http.get(f"{site.base}/viewer/foto3d-viewer-0.0.0.000000000000.js") as r:
            assert r.status == 404


def test_snippets_pin_the_bundle_and_escape_attributes() -> None:
    snippet = assets.embed_snippet(
        object_id="acme-vase-001",
        api_base="https://gw.example",
        key='pk_"x',
        bundle_url="/viewer/f.js",
        sri="sha384-abc",
    )
    assert 'integrity="sha384-abc" crossorigin="anonymous"' in snippet
    assert 'key="pk_&quot;x"' in snippet and 'model="acme-vase-001"' in snippet
    assert 'src="https://gw/embed/a?key=k&amp;x=1"' in assets.iframe_snippet(
        embed_url="https://gw/embed/a?key=k&x=1"
    )
    with pytest.raises(ValueError):
        assets.viewer_tag(src="a.ply", options={"onload=alert(1) x": "y"})


async def test_embed_page_loads_the_model_through_the_api(page: Any, site: Site) -> None:
    size = (site.files_dir / "clean.spz").stat().st_size
    site.models["acme-vase-002"] = {
        "object_id": "acme-vase-002",
        "name": "Vase",
        "status": "production",
        "model_version": 1,
        "config": {},
        "files": [
            {
                "format": "spz",
                "url": f"{site.base}/files/clean.spz",
                "bytes": size,
                "content_type": "x",
                "sha256": "",
            }
        ],
        "poster_url": None,
        "expires_at": "2099-01-01T00:00:00Z",
    }
    # the browser checks the integrity hash: a wrong one would block the module and never get "ready"
    await page.goto(f"{site.base}/embed/acme-vase-002?key=pk_test")
    await page.wait_for_function(
        "() => document.querySelector('foto3d-viewer')?.state === 'ready'", timeout=90_000
    )
