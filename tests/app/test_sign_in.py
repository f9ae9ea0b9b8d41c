"""Nobody in without signing in: every registered dashboard route refuses a request without a
session, except the few handlers marked ``@public``; so a new route cannot forget it."""

from __future__ import annotations

import re

import aiohttp
import pytest
from aiohttp import web

from foto3d.app.registry import available_services
from foto3d.app.runtime import Runtime
from foto3d.libs.auth.gate import is_public_route
from foto3d.libs.config import Settings
from testkit.signin import staff_cookie

# The whole list of what anyone may open. Adding to it is a decision: make it here too.
PUBLIC = {
    ("GET", "/static"),
    ("GET", "/healthz"),
    ("GET", "/login"),
    ("POST", "/login"),
    ("GET", "/logout"),
    ("POST", "/logout"),
    # Past the gate so that Prometheus' bearer token can stand in for a session; the handler
    # refuses everyone else itself (tests/app/test_metrics.py, docs/metrics.md).
    ("GET", "/metrics"),
}


def concrete(path: str) -> str:
    """A request path for a route template: every ``{param}`` (with or without a regex) filled."""
    return re.sub(r"\{[^}]+\}", "x1", path)


async def _runtime(settings: Settings) -> Runtime:
    assert settings.nats_urls
    rt = Runtime(settings, settings.nats_urls, available_services(in_up_only=True), http=True, http_port=0)
    await rt.start()
    return rt


def _routes(rt: Runtime) -> list[tuple[str, str, web.AbstractRoute]]:
    assert rt._runner is not None
    app = rt._runner.app
    out = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter") or info.get("prefix")
        if route.method == "HEAD" or path is None:
            continue
        out.append((route.method, str(path), route))
    return out


async def test_every_route_refuses_a_request_without_a_session(settings: Settings) -> None:
    rt = await _runtime(settings)
    try:
        routes = _routes(rt)
        # The services' pages and APIs are all there (the walk is not vacuous).
        paths = {p for _, p, _ in routes}
        for page in ("/jobs", "/logs", "/api/logs", "/api/logs/stream", "/api/jobs", "/objects", "/"):
            assert page in paths, sorted(paths)
        public = {(m, p) for m, p, r in routes if is_public_route(r)}
        assert public == PUBLIC, "a route was made public: add it to PUBLIC only if it must be"
        async with aiohttp.ClientSession(base_url=rt.http_url) as http:
            refused = 0
            for method, path, route in routes:
                if (method, path) in PUBLIC or is_public_route(route):
                    continue
                url = concrete(path)
                # An API client (asking for JSON) gets 401 ...
                headers = {"Accept": "application/json"}
                async with http.request(method, url, allow_redirects=False, json={}, headers=headers) as r:
                    assert r.status == 401, f"{method} {path} answered {r.status} without a session"
                    body = await r.json()
                    assert "sign in" in body["error"]
                # ... a browser opening a page is sent to the sign-in page, coming back afterwards.
                if method == "GET":
                    async with http.get(url, allow_redirects=False) as r:
                        expected = 401 if path.startswith("/api/") else 302
                        assert r.status == expected, f"GET {path} answered {r.status} to a browser"
                        if expected == 302:
                            assert r.headers["Location"].startswith("/login?next=")
                refused += 1
            assert refused >= 20
            async with http.get("/healthz") as r:
                assert r.status == 200
            async with http.get("/static/style.css") as r:
                assert r.status == 200
    finally:
        await rt.stop()


async def test_signed_in_staff_and_the_trusted_proxy_header_get_in(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FOTO3D_AUTH_PROXY_HEADER", "X-Forwarded-User")
    rt = await _runtime(settings)
    try:
        cookies = await staff_cookie(settings)
        async with aiohttp.ClientSession(base_url=rt.http_url, cookies=cookies) as http:
            for path in ("/", "/jobs", "/logs", "/api/jobs", "/api/logs"):
                async with http.get(path, allow_redirects=False) as r:
                    assert r.status == 200, f"{path}: {r.status}"
            async with http.post("/api/jobs/no-such-job/cancel", json={}, allow_redirects=False) as r:
                assert r.status != 401
        async with aiohttp.ClientSession(base_url=rt.http_url) as http:
            headers = {"X-Forwarded-User": "alice"}
            async with http.get("/api/jobs", headers=headers, allow_redirects=False) as r:
                assert r.status == 200
            # A forged or expired cookie is no session.
            async with http.get("/api/jobs", cookies={"f3d_session": "alice|1|bad"}) as r:
                assert r.status == 401
    finally:
        await rt.stop()
