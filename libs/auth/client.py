"""Who the client is and how it came: its address and whether it used HTTPS, through a proxy or not.

A reverse proxy puts the real client in ``X-Forwarded-For`` and the scheme in
``X-Forwarded-Proto``; those headers are believed only from the configured trusted proxies
(anyone else could write them to dodge the per-address sign-in limits).
"""

from __future__ import annotations

from aiohttp import web


def client_address(request: web.Request, trusted: list[str]) -> str:
    """The client's address: the peer, or behind a trusted proxy the nearest hop it vouches for."""
    peer = request.remote or ""
    if peer not in trusted:
        return peer
    hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
    # The rightmost hop that is not one of our proxies: anything left of it the client wrote itself.
    for hop in reversed(hops):
        if hop not in trusted:
            return hop[:64]
    return peer


def is_https(request: web.Request, trusted: list[str]) -> bool:
    """True when the browser reached us over HTTPS, directly or through a trusted proxy."""
    if request.secure:
        return True
    if (request.remote or "") not in trusted:
        return False
    proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return proto == "https"
