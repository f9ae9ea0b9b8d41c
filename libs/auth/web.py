"""Who is asking: a signed session cookie (``/login``) or a trusted reverse-proxy header.

Every dashboard route needs a signed-in user (:mod:`foto3d.libs.auth.gate` denies by
default); pages that change things also call :meth:`Auth.require_page` /
:meth:`Auth.require_api`, which return the signed-in :class:`User`, whose name goes into
every event as the actor.

``/login`` checks a password (and a one-time code where the account has them) only when
the sign-in limits allow (:mod:`foto3d.libs.auth.throttle`, shared over the bus by
:mod:`foto3d.libs.auth.shared`), writes every outcome to the sign-in log
(:mod:`foto3d.libs.auth.signinlog`) and opens a server-side session. The whole picture is in
docs/security.md.

Settings: the ``[auth]`` table below (listed in docs/configuration.md).
"""

from __future__ import annotations

import json
import logging
import socket
import time
import urllib.parse
import uuid
from typing import Annotated, Any

import msgspec
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from msgspec import Meta

from foto3d.libs.auth.client import client_address, is_https
from foto3d.libs.auth.csrf import same_origin_required
from foto3d.libs.auth.gate import Handler, public, signed_in_user, wants_page
from foto3d.libs.auth.pages import ACCOUNT_PATH, SIGNINS_PATH, AuthPages
from foto3d.libs.auth.session import SessionSigner, load_secret
from foto3d.libs.auth.shared import KeyedLocks, SharedLimits
from foto3d.libs.auth.shared_users import SharedUsers, shared_cookie_key
from foto3d.libs.auth.signinlog import SignInLog, describe
from foto3d.libs.auth.throttle import Backoff, SignInLimits, address_key, too_many_sign_ins
from foto3d.libs.auth.users import User, UserStore
from foto3d.libs.bus.connection import Bus
from foto3d.libs.config import Settings
from foto3d.libs.service import NavLink
from foto3d.libs.settings import Env, Table
from foto3d.libs.web.layout import esc, render_page
from foto3d.proto import subjects
from foto3d.proto.auth import SIGN_IN_MEMORY_S, SignInChecked, SignInUnlocked, StaffNotice
from foto3d.proto.logs import Level

log = logging.getLogger(__name__)

COOKIE = "f3d_session"
WRONG = "Wrong user name, password or code."


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
    secure_cookie: Annotated[
        bool,
        Meta(
            description="always set the cookie's Secure flag (it is set anyway whenever the request came "
            "over HTTPS, directly or with X-Forwarded-Proto from a trusted proxy)"
        ),
    ] = False
    account_free_failures: Annotated[
        int, Meta(ge=1, description="failed sign-ins an account may have before each further one must wait")
    ] = 5
    address_free_failures: Annotated[
        int,
        Meta(
            ge=1, description="failed sign-ins one client address (IPv6: one /64) may have before waits start"
        ),
    ] = 10
    lock_base_s: Annotated[
        float, Meta(gt=0, description="the first wait, in seconds; it doubles with every further failure")
    ] = 1.0
    lock_max_s: Annotated[float, Meta(gt=0, description="the longest wait between two checked passwords")] = (
        900.0
    )
    new_address_mail: Annotated[
        bool,
        Meta(
            description="mail a person (at the address `foto3d users email` set) when their account signs "
            "in from an address it never used before"
        ),
        Env("FOTO3D_AUTH_NEW_ADDRESS_MAIL"),
    ] = False
    admin_totp_required: Annotated[
        bool,
        Meta(
            description="administrators must use one-time codes (TOTP): one without is sent to set them up "
            "before anything else"
        ),
        Env("FOTO3D_AUTH_ADMIN_TOTP"),
    ] = False


SETTINGS = Table("auth", AuthSettings, "staff sign-in for the dashboard", docs="catalog.md")


class Auth:
    def __init__(self, settings: Settings, cfg: AuthSettings | None = None, bus: Bus | None = None) -> None:
        self.cfg = cfg or SETTINGS.load(settings)
        # With a bus, the accounts (and sessions, and the cookie key) are every instance's: see
        # shared_users.py; without one (a page-only helper, a unit test), this folder's alone.
        local = UserStore.in_data_dir(settings.data_dir)
        self.users: UserStore = SharedUsers(local.path, bus) if bus is not None else local
        # The shared key where this folder has folded one (so a second Auth of the process, e.g. a
        # service's own, checks the cookies the dashboard's made), else this folder's own.
        key = shared_cookie_key(local.path) or load_secret(settings.data_dir / "auth" / "session.key")
        self.signer = SessionSigner(key, self.cfg.session_hours * 3600)
        self.bus = bus
        self.instance = uuid.uuid4().hex[:8]
        limits = SignInLimits(
            Backoff(self.cfg.account_free_failures, self.cfg.lock_base_s, self.cfg.lock_max_s),
            Backoff(self.cfg.address_free_failures, self.cfg.lock_base_s, self.cfg.lock_max_s),
            SIGN_IN_MEMORY_S,
        )
        self.limits = SharedLimits(limits, bus, self.instance)
        self.signin_log = SignInLog(bus, self.instance, socket.gethostname())
        self._one_at_a_time = KeyedLocks()

    async def start(self) -> None:
        """Fold the shared staff accounts and adopt the shared cookie key; learn the limits already
        running on the other instances; start shipping the sign-in log."""
        if isinstance(self.users, SharedUsers):
            await self.users.start()
            self.signer.secret = await self.users.cookie_key(self.signer.secret)
        await self.limits.start()
        self.signin_log.start()

    async def stop(self) -> None:
        await self.limits.stop()
        await self.signin_log.stop()
        if isinstance(self.users, SharedUsers):
            await self.users.stop()

    async def user(self, request: web.Request) -> User | None:
        gated = signed_in_user(request)
        if gated is not None:  # the dashboard's gate has looked this request's cookie up already
            return gated
        if self.cfg.proxy_header and request.remote in self.cfg.trusted_proxies:
            name = request.headers.get(self.cfg.proxy_header, "").strip()
            if name:
                return User(name=name, display_name=name, admin=False)
        found = self.session_of(request)
        return await self.users.session_user(found[1], found[0]) if found else None

    def session_of(self, request: web.Request) -> tuple[str, str] | None:
        """(user name, session id) of the request's signed cookie (not yet checked against the store)."""
        cookie = request.cookies.get(COOKIE)
        return self.signer.verify_session(cookie) if cookie else None

    async def issue_cookie(self, name: str, address: str = "", user_agent: str = "") -> str:
        """Open a session for ``name`` and return its cookie value."""
        sid = await self.users.open_session(name, self.signer.max_age_s, address, user_agent)
        return self.signer.issue(name, session=sid)

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
            web.post("/api/auth/unlock", self._unlock),
            *AuthPages(self).routes(),
        ]

    def nav(self) -> list[NavLink]:
        return [NavLink("Sign-ins", SIGNINS_PATH, 80), NavLink("Account", ACCOUNT_PATH, 90)]

    def pending_step(self, user: User) -> str | None:
        """What a signed-in user must do before anything else, if anything."""
        if user.must_change:
            return "Choose a new password before going on (the one you signed in with was generated)."
        if self.cfg.admin_totp_required and user.admin and not user.totp:
            return "Administrators here sign in with one-time codes: set yours up before going on."
        return None

    def steps_guard(self) -> Any:
        """After sign-in: a user with a pending step (a forced password change, required TOTP) gets
        only their account page and signing out until it is done."""

        @web.middleware
        async def steps(request: web.Request, handler: Handler) -> web.StreamResponse:
            user = signed_in_user(request)
            if user is None or request.path.startswith(ACCOUNT_PATH) or request.path == "/logout":
                return await handler(request)
            why = self.pending_step(user)
            if why is None:
                return await handler(request)
            if wants_page(request):
                raise web.HTTPFound(ACCOUNT_PATH)
            raise web.HTTPForbidden(text=json.dumps({"error": why}), content_type="application/json")

        return steps

    def csrf_guard(self, public_url: str | None) -> Any:
        """The middleware that refuses cross-site state changes (see ``libs/auth/csrf.py``)."""
        return same_origin_required(self.cfg.trusted_proxies, public_url)

    def client_address(self, request: web.Request) -> str:
        return client_address(request, self.cfg.trusted_proxies)

    @public
    async def _login_page(
        self, request: web.Request, error: str = "", nxt: str = "", status: int = 0
    ) -> web.Response:
        nxt = _safe_next(nxt or request.query.get("next", "/objects"))
        user = await self.user(request)
        who = f'<p class="muted">Signed in as <b>{esc(user.name)}</b>.</p>' if user else ""
        err = f'<p class="login-error" role="alert">{esc(error)}</p>' if error else ""
        body = f"""<div class="panel login-panel">{who}{err}
<form method="post" action="/login" class="login-form">
<input type="hidden" name="next" value="{esc(nxt)}">
<label>User <input name="username" autocomplete="username" required autofocus></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<label>One-time code <span class="muted">(if you set one up)</span>
<input name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9 ]*" maxlength="8"></label>
<button type="submit">Sign in</button></form></div>
<style>.login-panel{{max-width:360px}} .login-form label{{display:block;margin:.6em 0}}
.login-form input{{width:100%;box-sizing:border-box}} .login-error{{color:#c0392b}}</style>"""
        resp = render_page(request, "Sign in", body)
        resp.set_status(status or (401 if error else 200))
        return resp

    @public
    async def _login(self, request: web.Request) -> web.Response:
        try:
            form = await request.post()
        except (ValueError, HttpProcessingError):  # not a form: bytes that are not UTF-8, broken multipart
            resp = await self._login_page(request, "The sign-in form could not be read.")
            resp.set_status(400)
            return resp
        name = str(form.get("username", "")).strip().lower()[:128]
        password = str(form.get("password", ""))
        nxt = _safe_next(str(form.get("next", "/objects")))
        if not name or not password:
            return await self._login_page(request, WRONG, nxt)
        address = self.client_address(request)
        agent = request.headers.get("User-Agent", "")
        async with self._one_at_a_time.hold(f"user:{name}", f"ip:{address_key(address)}"):
            wait = self.limits.limits.retry_after(name, address, time.time())
            if wait > 0:
                # Refused unseen: the password is not looked at, and this try counts for nothing.
                self.signin_log.add(
                    Level.WARNING, describe("refused", name, address, agent, f"wait={wait:.0f}s")
                )
                note, retry = too_many_sign_ins(wait)
                resp = await self._login_page(request, note, nxt, status=429)
                resp.headers["Retry-After"] = retry
                return resp
            user = await self.users.authenticate(name, password)
            # A right password without its code is a failure like any other (and says nothing
            # more: the answer is the same as for a wrong password).
            if (
                user is not None
                and user.totp
                and not await self.users.check_code(user.name, str(form.get("code", "")))
            ):
                user = None
            checked = SignInChecked(
                account=name,
                address=address,
                ok=user is not None,
                at=time.time(),
                instance=self.instance,
                attempt_id=uuid.uuid4().hex,
            )
            incident = self.limits.record(checked)
        if user is None:
            self.signin_log.add(Level.WARNING, describe("failed", name, address, agent))
            if incident:
                # The first line names the account only: the notifier's fingerprint is that line,
                # so one burst (from any number of addresses) is one alert, one mail.
                self.signin_log.add(
                    Level.ERROR,
                    f"locked user={name}: {self.cfg.account_free_failures} wrong passwords in a row, "
                    "further sign-ins to this account now wait (is someone guessing?)\n"
                    + describe("last", name, address, agent),
                )
            return await self._login_page(request, WRONG, nxt)
        self.signin_log.add(Level.INFO, describe("ok", name, address, agent, "totp" if user.totp else ""))
        await self._tell_of_new_address(user.name, address, agent)
        resp = web.HTTPFound(nxt)
        self.set_cookie(resp, await self.issue_cookie(user.name, address, agent), request)
        raise resp

    async def _tell_of_new_address(self, name: str, address: str, agent: str) -> None:
        new, email = await self.users.note_address(name, address_key(address))
        if not (new and email and self.cfg.new_address_mail and self.bus is not None):
            return
        notice = StaffNotice(
            notice_id=uuid.uuid4().hex,
            to=email,
            user=name,
            subject=f"New sign-in to {name} from {address}",
            text=(
                f"Your dashboard account {name} was signed in to from {address}, an address it was "
                f"not used from before, at {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}.\n"
                f"Browser: {agent[:200]}\n\n"
                "If this was not you, change your password at once (Account page; it signs out the "
                "other sessions) and tell an administrator."
            ),
            at=time.time(),
        )
        self.limits.spawn(self._publish_notice(notice))

    async def _publish_notice(self, notice: StaffNotice) -> None:
        assert self.bus is not None
        try:
            await self.bus.publish(subjects.auth_notices(self.instance), notice, deadline=10.0)
        except Exception as exc:
            log.warning("the new-address mail for %s was not handed to the notifier: %r", notice.user, exc)

    async def _unlock(self, request: web.Request) -> web.Response:
        """An administrator lifts the limits of an account and/or a client address."""
        admin = await self.require_api(request)
        if not admin.admin:
            raise web.HTTPForbidden(
                text='{"error": "only an administrator may unlock"}', content_type="application/json"
            )
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(
                text='{"error": "the body must be a JSON object"}', content_type="application/json"
            )
        account = str(body.get("account", "")).strip().lower()[:128]
        address = str(body.get("address", "")).strip()[:64]
        if not account and not address:
            raise web.HTTPBadRequest(
                text='{"error": "name an account or an address"}', content_type="application/json"
            )
        self.limits.record(SignInUnlocked(account=account, address=address, by=admin.name, at=time.time()))
        self.signin_log.add(
            Level.WARNING,
            describe("unlocked", account, address, request.headers.get("User-Agent", ""), f"by={admin.name}"),
        )
        return web.json_response({"account": account, "address": address, "unlocked_by": admin.name})

    def set_cookie(self, resp: web.StreamResponse, value: str, request: web.Request) -> None:
        https = is_https(request, self.cfg.trusted_proxies)
        resp.set_cookie(
            COOKIE,
            value,
            max_age=int(self.signer.max_age_s),
            httponly=True,
            samesite="Strict",
            secure=self.cfg.secure_cookie or https,
            path="/",
        )

    @public
    async def _logout(self, request: web.Request) -> web.Response:
        found = self.session_of(request)
        if found:
            await self.users.end_sessions(found[0], found[1])  # the cookie is worthless from now on
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
