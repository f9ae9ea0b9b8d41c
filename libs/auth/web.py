"""Who is asking: a signed session cookie (``/login``) or a trusted reverse-proxy header.

Every dashboard route needs a signed-in user (:mod:`foto3d.libs.auth.gate` denies by
default); pages that change things also call :meth:`Auth.require_page` /
:meth:`Auth.require_api`, which return the signed-in :class:`User`, whose name goes into
every event as the actor.

Settings: the ``[auth]`` table below (listed in docs/configuration.md).
"""

from __future__ import annotations

import urllib.parse
from typing import Annotated, Any

import msgspec
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from msgspec import Meta

from foto3d.libs.auth.gate import public
from foto3d.libs.auth.session import SessionSigner, load_secret
from foto3d.libs.auth.users import User, UserStore
from foto3d.libs.config import Settings
from foto3d.libs.settings import Env, Table
from foto3d.libs.web.layout import esc, render_page

COOKIE = "f3d_session"


class AuthSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    proxy_header: Annotated[
        str,
        Meta(
            description="e.g. X-Forwarded-User: a request from a trusted proxy carrying it is signed in as that user"
        ),
        Env("FOTO3D_AUTH_PROXY_HEADER"),
    ] = ""
    trusted_proxies: Annotated[
        list[str],
        Meta(description="peer addresses allowed to set the proxy header"),
        Env("FOTO3D_AUTH_TRUSTED_PROXIES"),
    ] = msgspec.field(default_factory=lambda: ["127.0.0.1", "::1"])
    session_hours: Annotated[float, Meta(description="how long a sign-in lasts")] = 12.0
    secure_cookie: Annotated[bool, Meta(description="set the cookie's Secure flag (behind HTTPS)")] = False


SETTINGS = Table("auth", AuthSettings, "staff sign-in for the dashboard", docs="catalog.md")


class Auth:
    def __init__(self, settings: Settings, cfg: AuthSettings | None = None) -> None:
        self.cfg = cfg or SETTINGS.load(settings)
        self.users = UserStore.in_data_dir(settings.data_dir)
        self.signer = SessionSigner(
            load_secret(settings.data_dir / "auth" / "session.key"), self.cfg.session_hours * 3600
        )

    async def user(self, request: web.Request) -> User | None:
        if self.cfg.proxy_header and request.remote in self.cfg.trusted_proxies:
            name = request.headers.get(self.cfg.proxy_header, "").strip()
            if name:
                return User(name=name, display_name=name, admin=False)
        cookie = request.cookies.get(COOKIE)
        if not cookie:
            return None
        signed = self.signer.verify(cookie)
        return await self.users.get(signed) if signed else None

    async def require_page(self, request: web.Request) -> User:
        user = await self.user(request)
        if user is None:
            target = urllib.parse.quote(request.path_qs, safe="")
            raise web.HTTPFound(f"/login?next={target}")
        return user

    async def require_api(self, request: web.Request) -> User:
        user = await self.user(request)
        if user is None:
            raise web.HTTPUnauthorized(
                text='{"error": "sign in first (POST /login, or through the proxy)"}',
                content_type="application/json",
            )
        return user

    def routes(self) -> list[web.AbstractRouteDef]:
        return [
            web.get("/login", self._login_page),
            web.post("/login", self._login),
            web.post("/logout", self._logout),
            web.get("/logout", self._logout),
        ]

    @public
    async def _login_page(self, request: web.Request, error: str = "", nxt: str = "") -> web.Response:
        nxt = _safe_next(nxt or request.query.get("next", "/objects"))
        user = await self.user(request)
        who = f'<p class="muted">Signed in as <b>{esc(user.name)}</b>.</p>' if user else ""
        err = f'<p class="login-error" role="alert">{esc(error)}</p>' if error else ""
        body = f"""<div class="panel login-panel">{who}{err}
<form method="post" action="/login" class="login-form">
<input type="hidden" name="next" value="{esc(nxt)}">
<label>User <input name="username" autocomplete="username" required autofocus></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<button type="submit">Sign in</button></form></div>
<style>.login-panel{{max-width:360px}} .login-form label{{display:block;margin:.6em 0}}
.login-form input{{width:100%;box-sizing:border-box}} .login-error{{color:#c0392b}}</style>"""
        status = 401 if error else 200
        resp = render_page(request, "Sign in", body)
        resp.set_status(status)
        return resp

    @public
    async def _login(self, request: web.Request) -> web.Response:
        try:
            form = await request.post()
        except (ValueError, HttpProcessingError):  # not a form: bytes that are not UTF-8, broken multipart
            resp = await self._login_page(request, "The sign-in form could not be read.")
            resp.set_status(400)
            return resp
        name = str(form.get("username", "")).strip().lower()
        password = str(form.get("password", ""))
        nxt = _safe_next(str(form.get("next", "/objects")))
        user = await self.users.authenticate(name, password) if name and password else None
        if user is None:
            return await self._login_page(request, "Wrong user name or password.", nxt)
        resp = web.HTTPFound(nxt)
        self.set_cookie(resp, user.name)
        raise resp

    def set_cookie(self, resp: web.StreamResponse, name: str) -> None:
        resp.set_cookie(
            COOKIE,
            self.signer.issue(name),
            max_age=int(self.signer.max_age_s),
            httponly=True,
            samesite="Strict",
            secure=self.cfg.secure_cookie,
            path="/",
        )

    @public
    async def _logout(self, request: web.Request) -> web.Response:
        resp = web.HTTPFound("/login")
        resp.del_cookie(COOKIE, path="/")
        raise resp


def _safe_next(value: str) -> str:
    """Only same-site paths, so /login cannot be used to bounce people elsewhere."""
    if not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/objects"
    return value


def user_json(user: User | None) -> dict[str, Any]:
    return {"name": user.name, "display_name": user.display_name} if user else {}
