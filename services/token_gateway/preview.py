"""The staff's view of a live model, on the dashboard: what customers get, without a credential.

The catalog's "live link" points here (``proto.gateway.STAFF_MODEL_PAGE``): the model drawn by
``<foto3d-viewer>`` from the gateway's own index and store, its status, and the customer-facing
embed address (``/embed/{object_id}?key=pk_…``) with the iframe snippet to hand out. Behind
staff sign-in like every dashboard route; the files are streamed (local store) or redirected to
a presigned link (S3), never made public.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from foto3d.libs.auth.web import Auth
from foto3d.libs.splat.formats import registry as splat_formats
from foto3d.libs.viewer import assets
from foto3d.libs.web.layout import esc, render_page
from foto3d.proto.gateway import STAFF_MODEL_PAGE, STAFF_PUBLISHED_PREFIX
from foto3d.proto.naming import NamingError, validate_object_id
from foto3d.services.token_gateway.links import expiry
from foto3d.services.token_gateway.objects import ObjectState
from foto3d.services.token_gateway.parts import GatewayParts

# The bundle on the dashboard under the gateway's own prefix, so the page works whichever
# other services run beside it.
BUNDLE_PREFIX = "/customers/viewer/"
# What the publisher writes besides splats (their types come from the format registry).
PUBLISHED_TYPES = {".png": "image/png", ".json": "application/json"}


def _state(parts: GatewayParts, object_id: str) -> ObjectState:
    try:
        validate_object_id(object_id)
    except NamingError:
        raise web.HTTPNotFound(text="not an object id") from None
    state = parts.index.get(object_id)
    if state is None or state.version == 0:
        raise web.HTTPNotFound(text=f"{object_id} has never been published")
    return state


def routes(auth: Auth, parts: GatewayParts) -> list[web.AbstractRouteDef]:
    page_path = STAFF_MODEL_PAGE.format(object_id="{object_id}")

    async def model_page(request: web.Request) -> web.Response:
        await auth.require_page(request)
        state = _state(parts, request.match_info["object_id"])
        oid = state.object_id
        embed_url = f"{parts.base_url}/embed/{oid}?key=pk_…"
        splats = state.splats()
        config_file = state.by_kind("viewer_config")
        config: dict[str, Any] = await parts.viewer_config(config_file) if config_file else {}
        status = state.effective_status.value
        if not splats:
            view = '<p class="muted">This version has no splat file.</p>'
        else:
            try:
                b = assets.bundle()
            except assets.ViewerBundleMissing as exc:
                view = f'<p class="msg error">{esc(str(exc))}</p>'
            else:
                f = splats[0]  # smallest first, as customers' viewers pick
                name = f.key.rsplit("/", 1)[-1]
                # The page reads the file in src mode: its up axis goes into the config.
                shown = {k: v for k, v in config.items() if k != "files"}
                shown.setdefault("up", f.up or next(
                    (x.get("up") for x in config.get("files", []) if isinstance(x, dict) and x.get("format") == f.format),
                    None,
                ))  # fmt: skip
                if shown["up"] is None:
                    del shown["up"]
                tag = assets.viewer_tag(
                    src=f"{page_path.format(object_id=oid)}/files/{name}",
                    config=json.dumps(shown),
                    options={"format": f.format},
                )
                view = (
                    f'<div style="height:480px">{tag}</div>{assets.script_tag(BUNDLE_PREFIX + b.file, b.sri)}'
                )
        iframe = assets.iframe_snippet(embed_url=embed_url)
        try:
            b = assets.bundle()
        except assets.ViewerBundleMissing:
            module = ""
        else:
            module = assets.embed_snippet(
                object_id=oid,
                api_base=parts.base_url,
                key="pk_…",
                bundle_url=f"{parts.base_url}/viewer/{b.file}",
                sri=b.sri,
            )
        module_html = (
            "<h3>In the page itself (recommended)</h3><p>The viewer module, pinned by its hash, and the "
            "element; the key's origins must include the shop's:</p>"
            f'<pre class="snippet">{esc(module)}</pre>'
            if module
            else ""
        )
        body = f"""<p class="muted"><span class="mono">{esc(oid)}</span> · v{state.version} ·
status <b class="model-status">{esc(status)}</b>{" (customers get 404)" if not state.live else ""}</p>
<div class="panel live-model">{view}</div>
<div class="panel"><h2>For the customer's site</h2>
<p>Replace <code>pk_…</code> with one of the customer's publishable keys (from
<a href="/customers/access">Customers' access</a>).</p>
{module_html}
<h3>Or as an iframe page</h3>
<pre class="embed-url snippet">{esc(embed_url)}</pre><pre class="snippet">{esc(iframe)}</pre></div>"""
        return render_page(request, state.name or oid, body)

    async def model_file(request: web.Request) -> web.StreamResponse:
        await auth.require_page(request)
        state = _state(parts, request.match_info["object_id"])
        f = state.file_named(state.version, request.match_info["name"])
        if f is None:
            raise web.HTTPNotFound(text="no such file in the live version")
        if parts.presigner is not None:
            raise web.HTTPFound(parts.presigner.url(f, expiry(parts.cfg.link_ttl_s)))
        path = parts.local_file(f.key)
        if not path.is_file():
            raise web.HTTPNotFound(text="the file is missing from the store")
        return web.FileResponse(path, headers={"Content-Type": f.content_type, "Cache-Control": "private"})

    async def published_file(request: web.Request) -> web.StreamResponse:
        """Any published file of the local store by its key, for staff (the catalog's preview,
        file links and ``live_url`` point here); in S3 mode those addresses are the bucket's."""
        await auth.require_page(request)
        key = request.match_info["key"]
        if parts.local_root is None or not key.startswith("models/"):
            raise web.HTTPNotFound(text="no such published file")
        path = parts.local_file(key)
        if not path.is_file():
            raise web.HTTPNotFound(text="no such published file")
        spec = splat_formats.from_name(path.name)
        ctype = spec.content_type if spec else PUBLISHED_TYPES.get(path.suffix, "application/octet-stream")
        return web.FileResponse(path, headers={"Content-Type": ctype, "Cache-Control": "private"})

    return [
        web.get(STAFF_PUBLISHED_PREFIX + "{key:.+}", published_file),
        web.get(page_path, model_page),
        web.get(page_path + "/files/{name}", model_file),
        web.get(BUNDLE_PREFIX + "{file}", assets.handle_bundle),
    ]
