"""Who is asking on ``/portal/``: a customer account's session, checked before every handler.

Built from the staff sign-in's parts (``foto3d.libs.auth``), not a copy of them: the same
password rules and scrypt hashes (:class:`UserStore`, on the portal's own file), the same
signed session cookies naming a server-side session, the same one-time codes, the same
guessing limits (failures counted per account and per client address, shared by every
gateway instance over the sign-in stream; portal accounts count there as ``portal:<name>``,
so they never lock a staff account of the same name). The cookie is its own (``f3d_portal``,
``Path=/portal``, ``HttpOnly``, ``SameSite=Strict``, ``Secure`` whenever the portal is reached
over HTTPS), signed with a key of its own.

:func:`PortalAuth.gate` is a middleware over the whole listener: every ``/portal`` route needs a
session unless its handler is marked :func:`~foto3d.libs.auth.gate.public` (sign-in, the
invitation link, sign-out), and every POST there must come from the portal's own origin
(:func:`~foto3d.libs.auth.csrf.cross_site_refusal`, the staff's rule).
"""

from __future__ import annotations

import ipaddress
import secrets
import time
import urllib.parse
import uuid
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from foto3d.libs.auth.csrf import cross_site_refusal, origin_of
from foto3d.libs.auth.enrol import TOTP_ON, enrol_totp
from foto3d.libs.auth.gate import Handler, is_public_route, public
from foto3d.libs.auth.session import SessionSigner
from foto3d.libs.auth.shared import KeyedLocks, SharedLimits
from foto3d.libs.auth.throttle import Backoff, SignInLimits, address_key, too_many_sign_ins
from foto3d.libs.auth.totp import new_secret, provisioning_uri
from foto3d.libs.auth.users import UserError
from foto3d.libs.bus.connection import Bus
from foto3d.libs.web.layout import esc
from foto3d.proto.auth import SIGN_IN_MEMORY_S, SignInChecked
from foto3d.services.token_gateway.listener import client_ip
from foto3d.services.token_gateway.parts import GatewayParts
from foto3d.services.token_gateway.portal.accounts import Member, PortalAccounts
from foto3d.services.token_gateway.portal.invites import INVITE_PATH
from foto3d.services.token_gateway.portal.layout import PORTAL, page, redirect

COOKIE = "f3d_portal"
SESSION_HOURS = 12.0
LOGIN_PATH = f"{PORTAL}/login"
LOGOUT_PATH = f"{PORTAL}/logout"
ACCOUNT_PATH = f"{PORTAL}/account"
# The staff's defaults ([auth] in docs/configuration.md): 5 free failures per account, 10 per
# address, then 1 s doubling up to 15 minutes.
ACCOUNT_BACKOFF = Backoff(5, 1.0, 900.0)
ADDRESS_BACKOFF = Backoff(10, 1.0, 900.0)
WRONG = "Wrong mail address, password or code."

MEMBER_KEY: web.RequestKey[Member] = web.RequestKey("f3d_portal_member", Member)


def member_of(request: web.Request) -> Member:
    """The signed-in account (the gate put it there; every scoped query starts from it)."""
    return request[MEMBER_KEY]


def limit_key(name: str) -> str:
    return f"portal:{name}"


def _safe_next(value: str) -> str:
    if not value.startswith(PORTAL + "/") or value.startswith("//") or "\\" in value:
        return PORTAL + "/"
    return value


class PortalAuth:
    def __init__(self, parts: GatewayParts, accounts: PortalAccounts, bus: Bus | None, instance: str) -> None:
        self.parts = parts
        self.accounts = accounts
        # The cookie key is the same on every instance (from the portal's stream, at start).
        self.signer = SessionSigner(secrets.token_bytes(32), SESSION_HOURS * 3600)
        self.limits = SharedLimits(
            SignInLimits(ACCOUNT_BACKOFF, ADDRESS_BACKOFF, SIGN_IN_MEMORY_S), bus, instance
        )
        self.instance = instance
        self._locks = KeyedLocks()

    async def start(self) -> None:
        await self.accounts.start()
        self.signer = SessionSigner(await self.accounts.cookie_key(), SESSION_HOURS * 3600)
        await self.limits.start()

    async def stop(self) -> None:
        await self.limits.stop()
        await self.accounts.stop()

    # ---- sessions ---------------------------------------------------------------------

    async def member(self, request: web.Request) -> Member | None:
        cookie = request.cookies.get(COOKIE)
        found = self.signer.verify_session(cookie) if cookie else None
        if found is None:
            return None
        user = await self.accounts.users.session_user(found[1], found[0])
        return await self.accounts.member(user.name) if user else None

    def _https(self, request: web.Request) -> bool:
        if request.secure or self.parts.base_url.startswith("https://"):
            return True
        try:
            peer = ipaddress.ip_address(request.remote or "")
        except ValueError:
            return False
        proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
        return proto == "https" and any(peer in n for n in self.parts.trusted_proxies)

    async def open_session(self, request: web.Request, resp: web.StreamResponse, name: str) -> None:
        sid = await self.accounts.users.open_session(
            name,
            self.signer.max_age_s,
            client_ip(self.parts, request),
            request.headers.get("User-Agent", "")[:300],
        )
        resp.set_cookie(
            COOKIE,
            self.signer.issue(name, session=sid),
            max_age=int(self.signer.max_age_s),
            httponly=True,
            samesite="Strict",
            secure=self._https(request),
            path=PORTAL,
        )

    # ---- the gate ---------------------------------------------------------------------

    def gate(self) -> Any:
        also = frozenset(o for o in [origin_of(self.parts.cfg.public_url)] if o)

        @web.middleware
        async def portal_gate(request: web.Request, handler: Handler) -> web.StreamResponse:
            if not (request.path == PORTAL or request.path.startswith(PORTAL + "/")):
                return await handler(request)
            why = cross_site_refusal(request, [], also)
            if why is not None:
                return web.Response(status=403, text=f"cross-site request refused: {why}")
            match = request.match_info
            if match.http_exception is not None or is_public_route(match.route):
                return await handler(request)
            member = await self.member(request)
            if member is None:
                if request.method in ("GET", "HEAD"):
                    return redirect(f"{LOGIN_PATH}?next={urllib.parse.quote(request.path_qs, safe='')}")
                return web.Response(status=401, text="sign in first")
            request[MEMBER_KEY] = member
            return await handler(request)

        return portal_gate

    # ---- pages ------------------------------------------------------------------------

    def routes(self) -> list[web.AbstractRouteDef]:
        return [
            web.get(LOGIN_PATH, self.login_page),
            web.post(LOGIN_PATH, self.login),
            web.post(LOGOUT_PATH, self.logout),
            web.get(INVITE_PATH + "{token}", self.invite_page),
            web.post(INVITE_PATH + "{token}", self.accept_invite),
            web.get(ACCOUNT_PATH, self.account),
            web.post(ACCOUNT_PATH + "/totp/start", self.totp_start),
            web.post(ACCOUNT_PATH + "/totp/confirm", self.totp_confirm),
            web.post(ACCOUNT_PATH + "/totp/off", self.totp_off),
        ]

    @public
    async def login_page(
        self, request: web.Request, error: str = "", nxt: str = "", status: int = 0
    ) -> web.Response:
        nxt = _safe_next(nxt or request.query.get("next", PORTAL + "/"))
        err = f'<p class="error" role="alert">{esc(error)}</p>' if error else ""
        body = f"""<div class="panel narrow">{err}
<form method="post" action="{LOGIN_PATH}" class="stack" id="login-form">
<input type="hidden" name="next" value="{esc(nxt)}">
<label>Mail address <input name="username" type="email" autocomplete="username" required autofocus></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<label>One-time code <span class="muted">(if you set one up)</span>
<input name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9 ]*" maxlength="8"></label>
<button type="submit" class="primary">Sign in</button></form>
<p class="muted">No account yet? The people who made your 3D models send you an invitation.</p></div>"""
        return page(request, "Sign in", body, status=status or (401 if error else 200))

    @public
    async def login(self, request: web.Request) -> web.Response:
        try:
            form = await request.post()
        except (ValueError, HttpProcessingError):
            return await self.login_page(request, "The sign-in form could not be read.", status=400)
        name = str(form.get("username", "")).strip().lower()[:128]
        password = str(form.get("password", ""))
        nxt = _safe_next(str(form.get("next", PORTAL + "/")))
        if not name or not password:
            return await self.login_page(request, WRONG, nxt)
        address = client_ip(self.parts, request)
        async with self._locks.hold(f"user:{name}", f"ip:{address_key(address)}"):
            wait = self.limits.limits.retry_after(limit_key(name), address, time.time())
            if wait > 0:  # refused unseen: the password is not looked at, and this try counts for nothing
                note, retry = too_many_sign_ins(wait)
                resp = await self.login_page(request, note, nxt, status=429)
                resp.headers["Retry-After"] = retry
                return resp
            user = await self.accounts.users.authenticate(name, password)
            if (
                user is not None
                and user.totp
                and not await self.accounts.users.check_code(user.name, str(form.get("code", "")))
            ):
                user = None
            member = await self.accounts.member(user.name) if user is not None else None
            self.limits.record(
                SignInChecked(
                    account=limit_key(name),
                    address=address,
                    ok=member is not None,
                    at=time.time(),
                    instance=self.instance,
                    attempt_id=uuid.uuid4().hex,
                )
            )
        if member is None:
            return await self.login_page(request, WRONG, nxt)
        resp = redirect(nxt)
        await self.open_session(request, resp, member.name)
        return resp

    @public
    async def logout(self, request: web.Request) -> web.Response:
        cookie = request.cookies.get(COOKIE)
        found = self.signer.verify_session(cookie) if cookie else None
        if found:
            await self.accounts.users.end_sessions(found[0], found[1])  # the cookie is worthless from now on
        resp = redirect(LOGIN_PATH)
        resp.del_cookie(COOKIE, path=PORTAL)
        return resp

    def _invite_form(self, token: str, email: str, error: str = "") -> str:
        err = f'<p class="error" role="alert">{esc(error)}</p>' if error else ""
        return f"""<div class="panel narrow">{err}<p>Welcome, <b>{esc(email)}</b>. Choose the password you will
sign in with: at least 8 characters, not one of the most common ones.</p>
<form method="post" action="{INVITE_PATH}{esc(token)}" class="stack" id="invite-form">
<label>Password <input name="password" type="password" autocomplete="new-password" required autofocus></label>
<label>Password again <input name="again" type="password" autocomplete="new-password" required></label>
<button type="submit" class="primary">Set password and sign in</button></form></div>"""

    @public
    async def invite_page(self, request: web.Request) -> web.Response:
        token = request.match_info["token"][:100]
        member = await self.accounts.invited(token)
        if member is None:
            return page(request, "Invitation", _DEAD_LINK, status=404)
        resp = page(request, "Your invitation", self._invite_form(token, member.email))
        resp.headers["Referrer-Policy"] = "no-referrer"  # the link is a secret
        return resp

    @public
    async def accept_invite(self, request: web.Request) -> web.Response:
        token = request.match_info["token"][:100]
        form = await request.post()
        password = str(form.get("password", ""))
        member = await self.accounts.invited(token)
        if member is None:
            return page(request, "Invitation", _DEAD_LINK, status=404)
        if password != str(form.get("again", "")):
            return page(
                request,
                "Your invitation",
                self._invite_form(token, member.email, "The two passwords differ."),
                status=400,
            )
        try:
            accepted = await self.accounts.accept(token, password)
        except UserError as exc:
            return page(
                request, "Your invitation", self._invite_form(token, member.email, str(exc)), status=400
            )
        if accepted is None:
            return page(request, "Invitation", _DEAD_LINK, status=404)
        resp = redirect(f"{ACCOUNT_PATH}?welcome=1")
        await self.open_session(request, resp, accepted.name)
        return resp

    # ---- the account: one-time codes ----------------------------------------------------

    async def account(
        self, request: web.Request, note: str = "", status: int = 200, enrol: str = ""
    ) -> web.Response:
        m = member_of(request)
        user = await self.accounts.users.get(m.name)
        on = bool(user and user.totp)
        if not note and request.query.get("welcome"):
            note = "Your password is set and you are signed in. You may also turn on one-time codes below."
        banner = f'<p class="notice" role="status">{esc(note)}</p>' if note else ""
        if on:
            totp = f"""<p>On: signing in asks for a code from your authenticator app.</p>
<form method="post" action="{ACCOUNT_PATH}/totp/off" class="stack">
<label>Password <input name="current" type="password" autocomplete="current-password" required></label>
<label>Code <input name="code" inputmode="numeric" autocomplete="one-time-code" required></label>
<button type="submit" class="danger">Turn off</button></form>"""
        elif enrol:
            uri = provisioning_uri(enrol, m.name, issuer="foto3d portal")
            totp = f"""<p>Add this key to your authenticator app (or open the link on the phone that has it),
then enter the code it shows.</p><p>Key: <code id="totp-secret">{esc(enrol)}</code></p>
<p><a href="{esc(uri)}" id="totp-uri">open in the app</a></p>
<form method="post" action="{ACCOUNT_PATH}/totp/confirm" class="stack">
<input type="hidden" name="secret" value="{esc(enrol)}">
<label>Password <input name="current" type="password" autocomplete="current-password" required></label>
<label>Code <input name="code" inputmode="numeric" autocomplete="one-time-code" required></label>
<button type="submit" class="primary">Turn on</button></form>"""
        else:
            totp = f"""<p>Off. With them on, signing in also asks for a code from an authenticator app
(TOTP, RFC 6238).</p><form method="post" action="{ACCOUNT_PATH}/totp/start">
<button type="submit" class="primary">Set up</button></form>"""
        body = f"""{banner}<div class="panel"><h2>You</h2><p>{esc(m.email)}, of <b>{esc(m.customer)}</b>.</p></div>
<div class="panel" id="totp"><h2>One-time codes</h2>{totp}</div>"""
        return page(request, "Account", body, customer=m.customer, status=status)

    async def _password_ok(self, request: web.Request, name: str, password: str) -> str | None:
        """A wrong password here counts like a failed sign-in (a borrowed session cannot guess it)."""
        address = client_ip(self.parts, request)
        if self.limits.limits.retry_after(limit_key(name), address, time.time()) > 0:
            return "Too many wrong passwords; try again later."
        ok = await self.accounts.users.authenticate(name, password) is not None
        self.limits.record(SignInChecked(account=limit_key(name), address=address, ok=ok, at=time.time()))
        return None if ok else "The password is wrong."

    async def totp_start(self, request: web.Request) -> web.Response:
        return await self.account(request, enrol=new_secret())

    async def totp_confirm(self, request: web.Request) -> web.Response:
        m = member_of(request)
        refused = await enrol_totp(
            self.accounts.users,
            m.name,
            await request.post(),
            lambda current: self._password_ok(request, m.name, current),
        )
        if refused:
            return await self.account(request, refused.note, 400, enrol=refused.enrol)
        return await self.account(request, TOTP_ON)

    async def totp_off(self, request: web.Request) -> web.Response:
        m = member_of(request)
        form = await request.post()
        why = await self._password_ok(request, m.name, str(form.get("current", "")))
        if why:
            return await self.account(request, why, 400)
        if not await self.accounts.users.check_code(m.name, str(form.get("code", ""))):
            return await self.account(request, "That code is not right.", 400)
        await self.accounts.users.set_totp(m.name, "")
        return await self.account(request, "One-time codes are off.")


_DEAD_LINK = """<div class="panel narrow"><p>This link has been used, has expired, or was replaced by a
newer invitation. Ask the people who sent it for a new one.</p>
<p><a href="/portal/login">Sign in</a> if you already chose a password.</p></div>"""
