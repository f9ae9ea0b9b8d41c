"""The HTTP front of `up` and `serve`: /healthz, the dashboard home, static files, the sign-in gate."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from foto3d.libs.auth.gate import UserLookup, public, public_static, sign_in_required
from foto3d.libs.service import NavLink
from foto3d.libs.web import docsite
from foto3d.libs.web.layout import NAV_KEY, STATIC_DIR, esc, render_page

HealthFn = Callable[[], dict[str, Any]]
HEALTH_KEY: web.AppKey[HealthFn] = web.AppKey("f3d_health")


@public  # for load balancers and probes; it names components, not customers' data
async def healthz(request: web.Request) -> web.Response:
    report = request.app[HEALTH_KEY]()
    status = 200 if report["status"] != "down" else 503
    return web.json_response(report, status=status)


async def home(request: web.Request) -> web.Response:
    report = request.app[HEALTH_KEY]()
    cards = []
    for name, comp in report["components"].items():
        state = comp.get("state", "?")
        detail = esc(comp.get("detail", ""))
        cards.append(
            f'<div class="card" data-component="{esc(name)}"><div class="label">{esc(name.replace("_", " "))}</div>'
            f'<div class="value"><span class="badge {esc(state)}">{esc(state)}</span></div>'
            f'<div class="muted">{detail}</div></div>'
        )
    nav: list[NavLink] = request.app.get(NAV_KEY, [])
    pages = "".join(
        f'<li><a href="{esc(n.href)}">{esc(n.title)}</a></li>'
        for n in sorted(nav, key=lambda n: n.order)
        if n.href != "/"
    )
    body = (
        f'<div class="cards">{"".join(cards)}</div>'
        f'<div class="panel"><h2>Pages</h2><ul>{pages}</ul>'
        f'<p class="muted">Machine-readable health: <a href="/healthz">/healthz</a></p></div>'
    )
    return render_page(request, "Overview", body)


async def handbook(request: web.Request) -> web.StreamResponse:
    """The internal documentation (built by `make docs`): staff only, like every dashboard page."""
    return docsite.serve(request, docsite.INTERNAL, "/handbook", cache="private, max-age=300")


def build_app(
    routes: list[web.AbstractRouteDef],
    nav: list[NavLink],
    health: HealthFn,
    user_of: UserLookup,
    guards: list[Any] | None = None,
    after_sign_in: list[Any] | None = None,
) -> web.Application:
    """The dashboard: every route behind staff sign-in unless its handler is ``@public``;
    ``guards`` run before the sign-in check (the cross-site request refusal), ``after_sign_in``
    after it (steps a signed-in user must take first)."""
    middlewares = [*(guards or []), sign_in_required(user_of), *(after_sign_in or [])]
    app = web.Application(client_max_size=8 * 1024 * 1024, middlewares=middlewares)
    app[HEALTH_KEY] = health
    app[NAV_KEY] = [NavLink("Overview", "/", 0), *nav, NavLink("Handbook", "/handbook/", 90)]
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/", home)
    app.router.add_get("/handbook", handbook)
    app.router.add_get("/handbook/{tail:.*}", handbook)
    app.router.add_routes([public_static("/static", STATIC_DIR), *routes])
    return app
