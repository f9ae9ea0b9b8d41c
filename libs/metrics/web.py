"""``GET /metrics`` on the dashboard port: a bearer token for Prometheus, or a staff session.

The figures name customers (the gateway's per-customer counters), so the page is private by
default, like every other dashboard route. Ops give Prometheus the ``[metrics] token`` (sent as
``Authorization: Bearer …``); without one, only a signed-in person can read it.
"""

from __future__ import annotations

import hmac

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from foto3d.libs.auth.gate import UserLookup, public
from foto3d.libs.metrics.hub import Metrics

BEARER = "bearer "


def bearer_matches(request: web.Request, token: str) -> bool:
    header = request.headers.get("Authorization", "")
    if not token or not header.lower().startswith(BEARER):
        return False
    return hmac.compare_digest(header[len(BEARER) :].strip().encode(), token.encode())


def metrics_route(metrics: Metrics, token: str, user_of: UserLookup) -> web.RouteDef:
    # Public to the sign-in gate only so that a token can stand in for a session; the
    # handler refuses everyone else itself.
    @public
    async def scrape(request: web.Request) -> web.Response:
        if not bearer_matches(request, token) and await user_of(request) is None:
            return web.json_response(
                {"error": "send the metrics token (Authorization: Bearer …) or sign in first"},
                status=401,
                headers={"WWW-Authenticate": 'Bearer realm="foto3d metrics"'},
            )
        body = await metrics.exposition()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return web.get("/metrics", scrape)
