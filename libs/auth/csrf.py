"""Cross-site request forgery: a state-changing request must come from the dashboard's own pages.

Every method but GET/HEAD/OPTIONS (every form post and every API call that changes
something, public routes like ``/login`` included) is refused with 403 when the browser says
it came from elsewhere: its ``Origin`` is not the dashboard's own origin (nor ``public_url``),
or, without an ``Origin``, its ``Sec-Fetch-Site`` is not ``same-origin``. These are the
headers browsers set themselves and pages cannot forge (OWASP's "verifying origin with
standard headers"); a client that sends neither (the CLI, curl, a script with a session
cookie) is not a browser a foreign page could drive.

SameSite=Strict already keeps the session cookie off requests from other *sites*; this also
covers other origins of the same site (another port on the same host, a sibling subdomain),
which SameSite counts as the same site.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from aiohttp import web

from foto3d.libs.auth.client import is_https
from foto3d.libs.auth.gate import Handler

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def origin_of(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower() if parts.scheme and parts.netloc else ""


def own_origin(request: web.Request, trusted: list[str]) -> str:
    """The origin the browser used to reach us (behind a trusted proxy: the proxy's)."""
    host = request.host
    if (request.remote or "") in trusted:
        host = request.headers.get("X-Forwarded-Host", "").split(",")[0].strip() or host
    scheme = "https" if is_https(request, trusted) else "http"
    return f"{scheme}://{host}".lower()


def cross_site_refusal(request: web.Request, trusted: list[str], also: frozenset[str]) -> str | None:
    """Why a request is refused as cross-site, or None when it may go on."""
    if request.method in SAFE_METHODS:
        return None
    origin = request.headers.get("Origin")
    if origin is not None:
        o = origin.strip().lower()
        if o == own_origin(request, trusted) or o in also:
            return None
        return f"a request from {origin[:100]!r} may not change anything here"
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        return f"a {site[:20]} request may not change anything here"
    return None


def same_origin_required(trusted: list[str], public_url: str | None) -> Any:
    also = frozenset(o for o in [origin_of(public_url or "")] if o)

    @web.middleware
    async def csrf(request: web.Request, handler: Handler) -> web.StreamResponse:
        why = cross_site_refusal(request, trusted, also)
        if why is not None:
            raise web.HTTPForbidden(
                text=json.dumps({"error": f"cross-site request refused: {why}"}),
                content_type="application/json",
            )
        return await handler(request)

    return csrf
