"""Default deny: every dashboard page and API needs a signed-in staff user.

The dashboard app runs :func:`sign_in_required` as a middleware over every route,
whichever service contributed it. A route is open to anyone only when its handler
is decorated with :func:`public`, or is a folder of files registered with
:func:`public_static` (grep ``@public`` and ``public_static`` to list them all). So a
new page, API or static folder is private unless someone decides otherwise in plain
sight.

Refusals: a GET of a page (any path outside ``/api/``, unless the client asks for
JSON) is sent to ``/login?next=…``; anything else gets ``401`` with a JSON error.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.web_urldispatcher import StaticResource

from foto3d.libs.auth.users import User

F = TypeVar("F", bound=Callable[..., Any])
PUBLIC_ATTR = "__foto3d_public__"
# Static folders carry the decision in their route name (a resource has no other label).
PUBLIC_STATIC_NAME = "public_static"

USER_KEY: web.RequestKey[User] = web.RequestKey("f3d_user", User)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
UserLookup = Callable[[web.Request], Awaitable[User | None]]


def public(handler: F) -> F:
    """Mark a route handler as open to anyone (health checks, the sign-in form)."""
    setattr(handler, PUBLIC_ATTR, True)
    return handler


def public_static(prefix: str, path: Path, **kwargs: Any) -> web.StaticDef:
    """A folder of files anyone may fetch (the page shell's stylesheet)."""
    ident = re.sub(r"\W", "_", prefix.strip("/")) or "root"
    return web.static(prefix, path, name=f"{PUBLIC_STATIC_NAME}.{ident}", **kwargs)


def is_public_route(route: web.AbstractRoute | None) -> bool:
    if route is None:
        return False
    resource = route.resource
    if isinstance(resource, StaticResource):
        return (resource.name or "").startswith(PUBLIC_STATIC_NAME + ".")
    return bool(getattr(route.handler, PUBLIC_ATTR, False))


def signed_in_user(request: web.Request) -> User | None:
    """The user the gate let in (None on a public route)."""
    return request.get(USER_KEY)


def wants_page(request: web.Request) -> bool:
    if request.method not in ("GET", "HEAD") or request.path.startswith("/api/"):
        return False
    return "application/json" not in request.headers.get("Accept", "")


def sign_in_required(user_of: UserLookup) -> Any:
    """The middleware; ``user_of`` resolves a request's session cookie or proxy header."""

    @web.middleware
    async def gate(request: web.Request, handler: Handler) -> web.StreamResponse:
        match = request.match_info
        if match.http_exception is not None or is_public_route(match.route):
            return await handler(request)
        user = await user_of(request)
        if user is None:
            if wants_page(request):
                target = urllib.parse.quote(request.path_qs, safe="")
                raise web.HTTPFound(f"/login?next={target}")
            raise web.HTTPUnauthorized(
                text='{"error": "sign in first (POST /login, or through the trusted proxy)"}',
                content_type="application/json",
            )
        request[USER_KEY] = user
        return await handler(request)

    return gate
