"""A small aiohttp site for viewer tests: the built bundle, splat files, pages and a model API.

The model API answers exactly like the token gateway's ``GET /v1/models/{object_id}`` (JSON shape
in docs/viewer.md), so the component's API path is exercised without the gateway service.
"""

from __future__ import annotations

import html
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from foto3d.libs.viewer import assets
from testkit.site import local_site

CONTENT_TYPES = {
    ".ply": "application/octet-stream",
    ".spz": "application/octet-stream",
    ".sog": "application/zip",
}


@dataclass
class Site:
    base: str
    files_dir: Path
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)

    def page_url(self, tag: str, *, width: int = 800, height: int = 600) -> str:
        """A page holding ``tag`` (a ``<foto3d-viewer …>`` element) at the given size."""
        from urllib.parse import quote

        return f"{self.base}/page?w={width}&h={height}&tag={quote(tag)}"


async def _page(request: web.Request) -> web.Response:
    b = assets.bundle()
    w, h = int(request.query.get("w", "800")), int(request.query.get("h", "600"))
    body = f"""<!doctype html><html><head><meta charset="utf-8">
<style>html,body{{margin:0;background:#fff}}foto3d-viewer{{width:{w}px;height:{h}px}}</style>
{assets.script_tag("/viewer/" + b.file, b.sri)}</head>
<body>{request.query["tag"]}</body></html>"""
    return web.Response(text=body, content_type="text/html")


@asynccontextmanager
async def serve_site(files_dir: Path) -> AsyncIterator[Site]:
    site = Site(base="", files_dir=files_dir)

    async def model(request: web.Request) -> web.Response:
        site.requests.append(str(request.rel_url))
        body = site.models.get(request.match_info["object_id"])
        if body is None or request.query.get("key") != "pk_test":
            return web.json_response({"error": "not_found", "message": "model not available"}, status=404)
        return web.json_response(body, headers={"Access-Control-Allow-Origin": "*"})

    async def file(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if "/" in name or name.startswith("."):
            raise web.HTTPNotFound()
        path = files_dir / name
        if not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path)

    async def embed(request: web.Request) -> web.Response:
        b = assets.bundle()
        page = assets.embed_page_html(
            object_id=request.match_info["object_id"],
            api_base=site.base,
            key=request.query.get("key", ""),
            bundle_url="/viewer/" + b.file,
            sri=b.sri,
            options={"formats": assets.EMBED_DEFAULT_FORMATS},
        )
        return web.Response(text=page, content_type="text/html")

    app = web.Application()
    app.router.add_get("/embed/{object_id}", embed)
    app.router.add_get("/viewer/{file}", assets.handle_bundle)
    app.router.add_get("/page", _page)
    app.router.add_get("/v1/models/{object_id}", model)
    app.router.add_get("/files/{name}", file)
    async with local_site(app, "127.0.0.1") as port:
        site.base = f"http://127.0.0.1:{port}"
        yield site


def tag(**attrs: str) -> str:
    return (
        "<foto3d-viewer"
        + "".join(f' {k}="{html.escape(v, quote=True)}"' for k, v in attrs.items())
        + "></foto3d-viewer>"
    )


def inline(config: object) -> str:
    return json.dumps(config)
