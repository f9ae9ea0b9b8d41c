"""Refusals of the iframe page (``/embed/…``) as the viewer's "Not available" card, not JSON.

The iframe shows whatever ``/embed/{object_id}?key=…`` answers. A shop visitor behind a busy
shared address (rate limit), a banned one, or a page whose key is wrong for its origin would
otherwise see ``{"error": …}`` in the product frame. They get the same card the viewer draws
for a model that is not available; the developer gets the reason in the browser's console.
The status code and ``Retry-After`` stay as they were, so the access log and tools still tell
one refusal from another.
"""

from __future__ import annotations

import json

import msgspec
from aiohttp import web

from foto3d.proto.gateway import ErrorReply

EMBED_PAGE_PREFIX = "/embed/"

# The viewer's card (libs/viewer/web/src/style.js), on a page of its own.
_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Not available</title>
<style>html,body{{margin:0;height:100%}}
.card{{position:fixed;inset:0;display:flex;flex-direction:column;align-items:center;justify-content:center;
gap:6px;font:15px system-ui,sans-serif;color:#555;background:#f4f5f7}}</style>
</head><body>
<div class="card" role="status"><strong>Not available</strong><span>This model cannot be shown right now.</span></div>
<script>console.warn({console})</script>
</body></html>
"""
# Inline style and the one inline script above; nothing else loads.
_CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'"


def is_embed_page(request: web.Request) -> bool:
    return request.method == "GET" and request.path.startswith(EMBED_PAGE_PREFIX)


def as_card(resp: web.StreamResponse) -> web.StreamResponse:
    """The refusal ``resp`` (an :func:`listener.error_response`) as the card page; anything else as is."""
    if resp.status < 400 or not isinstance(resp, web.Response) or not isinstance(resp.body, bytes):
        return resp
    try:
        err = msgspec.json.decode(resp.body, type=ErrorReply)
    except msgspec.DecodeError:
        return resp
    text = f"foto3d embed: HTTP {resp.status} {err.error}: {err.message}"
    # json.dumps makes a JS string literal; "<" as \u003c keeps "</script>" out of it.
    literal = json.dumps(text).replace("<", "\\u003c")
    page = web.Response(status=resp.status, text=_PAGE.format(console=literal), content_type="text/html")
    for name in ("Retry-After", "Cache-Control"):
        if name in resp.headers:
            page.headers[name] = resp.headers[name]
    page.headers["Content-Security-Policy"] = _CSP
    return page
