"""Staff pages of the sign-in itself: your account (password, sessions) and the sign-in log.

- ``/account``: change your password (the other sessions end), list your sessions, sign out
  everywhere else or everywhere.
- ``/signins``: the sign-in log (records of source kind ``signin`` from the log server,
  searchable) and the accounts waiting after failed passwords, which an admin can unlock.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from aiohttp import web

from foto3d.libs.auth.enrol import TOTP_ON, enrol_totp
from foto3d.libs.auth.signinlog import SIGN_IN_SOURCE_KIND, describe
from foto3d.libs.auth.totp import new_secret, provisioning_uri
from foto3d.libs.auth.users import UserError
from foto3d.libs.web.layout import esc, render_page
from foto3d.proto.auth import SignInChecked, SignInUnlocked
from foto3d.proto.logs import LOG_QUERY, Level, LogQuery

if TYPE_CHECKING:
    from foto3d.libs.auth.web import Auth

ACCOUNT_PATH = "/account"
SIGNINS_PATH = "/signins"
LOG_ROWS = 200


def when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


class AuthPages:
    def __init__(self, auth: Auth) -> None:
        self.auth = auth

    def routes(self) -> list[web.AbstractRouteDef]:
        return [
            web.get(ACCOUNT_PATH, self.account),
            web.post(ACCOUNT_PATH + "/password", self.change_password),
            web.post(ACCOUNT_PATH + "/sessions/end", self.end_sessions),
            web.post(ACCOUNT_PATH + "/totp/start", self.totp_start),
            web.post(ACCOUNT_PATH + "/totp/confirm", self.totp_confirm),
            web.post(ACCOUNT_PATH + "/totp/off", self.totp_off),
            web.get(SIGNINS_PATH, self.signins),
            web.post(SIGNINS_PATH + "/unlock", self.unlock),
        ]

    async def account(
        self, request: web.Request, note: str = "", status: int = 200, enrol: str = ""
    ) -> web.Response:
        user = await self.auth.require_page(request)
        user = await self.auth.users.get(user.name) or user  # fresh flags after a change here
        pending = self.auth.pending_step(user)
        found = self.auth.session_of(request)
        current = self.auth.users.stored_session_id(found[1]) if found else ""
        rows = []
        for s in await self.auth.users.sessions(user.name):
            this = " (this one)" if s.id == current else ""
            rows.append(
                f'<tr data-session="{esc(s.id[:8])}"><td>{when(s.created)}{this}</td><td>{when(s.seen)}</td>'
                f"<td>{esc(s.address)}</td><td>{esc(s.user_agent[:120])}</td></tr>"
            )
        banner = f'<p class="notice" role="status">{esc(note)}</p>' if note else ""
        if pending:
            banner += f'<p class="notice pending" role="alert" id="pending-step">{esc(pending)}</p>'
        body = f"""{banner}<div class="panel"><h2>Password</h2>
<form method="post" action="{ACCOUNT_PATH}/password" class="login-form" id="password-form">
<label>Current password <input name="current" type="password" autocomplete="current-password" required></label>
<label>New password <input name="new" type="password" autocomplete="new-password" required></label>
<label>New password again <input name="again" type="password" autocomplete="new-password" required></label>
<button type="submit">Change password</button></form>
<p class="muted">Changing it signs out your other sessions.</p></div>
<div class="panel"><h2>Sessions</h2><table id="sessions"><thead><tr><th>signed in (UTC)</th>
<th>last seen</th><th>address</th><th>browser</th></tr></thead><tbody>{"".join(rows)}</tbody></table>
<form method="post" action="{ACCOUNT_PATH}/sessions/end" style="display:inline">
<input type="hidden" name="keep" value="this"><button type="submit">Sign out everywhere else</button></form>
<form method="post" action="{ACCOUNT_PATH}/sessions/end" style="display:inline">
<button type="submit">Sign out everywhere</button></form></div>
{self._totp_panel(user.totp, enrol, user.name)}"""
        resp = render_page(request, f"Account: {user.name}", body)
        resp.set_status(status)
        return resp

    def _totp_panel(self, on: bool, enrol: str, name: str) -> str:
        if on:
            return f"""<div class="panel" id="totp"><h2>One-time codes</h2><p>On: signing in asks for a code
from your authenticator app.</p><form method="post" action="{ACCOUNT_PATH}/totp/off" class="login-form">
<label>Password <input name="current" type="password" autocomplete="current-password" required></label>
<label>Code <input name="code" inputmode="numeric" autocomplete="one-time-code" required></label>
<button type="submit">Turn off</button></form></div>"""
        if enrol:
            uri = provisioning_uri(enrol, name)
            return f"""<div class="panel" id="totp"><h2>One-time codes</h2>
<p>Add this key to your authenticator app (or open the link on the phone that has it), then
enter the code it shows.</p><p>Key: <code id="totp-secret">{esc(enrol)}</code></p>
<p><a href="{esc(uri)}" id="totp-uri">{esc(uri)}</a></p>
<form method="post" action="{ACCOUNT_PATH}/totp/confirm" class="login-form">
<input type="hidden" name="secret" value="{esc(enrol)}">
<label>Password <input name="current" type="password" autocomplete="current-password" required></label>
<label>Code <input name="code" inputmode="numeric" autocomplete="one-time-code" required></label>
<button type="submit">Turn on</button></form></div>"""
        return f"""<div class="panel" id="totp"><h2>One-time codes</h2><p>Off. With them on, signing in
also asks for a code from an authenticator app (TOTP, RFC 6238).</p>
<form method="post" action="{ACCOUNT_PATH}/totp/start"><button type="submit">Set up</button></form></div>"""

    async def _password_ok(self, request: web.Request, name: str, password: str) -> str | None:
        """None when ``password`` is the user's; else what to say. A wrong one counts like a failed
        sign-in, so a borrowed session cannot be used to guess the password."""
        address = self.auth.client_address(request)
        if self.auth.limits.limits.retry_after(name, address, time.time()) > 0:
            return "Too many wrong passwords; try again later."
        ok = await self.auth.users.authenticate(name, password) is not None
        self.auth.limits.record(SignInChecked(account=name, address=address, ok=ok, at=time.time()))
        return None if ok else "The current password is wrong."

    async def totp_start(self, request: web.Request) -> web.Response:
        await self.auth.require_page(request)
        return await self.account(request, enrol=new_secret())

    async def totp_confirm(self, request: web.Request) -> web.Response:
        user = await self.auth.require_page(request)
        refused = await enrol_totp(
            self.auth.users,
            user.name,
            await request.post(),
            lambda current: self._password_ok(request, user.name, current),
        )
        if refused:
            return await self.account(request, refused.note, 400, enrol=refused.enrol)
        ua = request.headers.get("User-Agent", "")
        self.auth.signin_log.add(
            Level.INFO, describe("totp-on", user.name, self.auth.client_address(request), ua)
        )
        return await self.account(request, TOTP_ON)

    async def totp_off(self, request: web.Request) -> web.Response:
        user = await self.auth.require_page(request)
        form = await request.post()
        why = await self._password_ok(request, user.name, str(form.get("current", "")))
        if why:
            return await self.account(request, why, 400)
        if not await self.auth.users.check_code(user.name, str(form.get("code", ""))):
            return await self.account(request, "That code is not right.", 400)
        await self.auth.users.set_totp(user.name, "")
        ua = request.headers.get("User-Agent", "")
        self.auth.signin_log.add(
            Level.WARNING, describe("totp-off", user.name, self.auth.client_address(request), ua)
        )
        return await self.account(request, "One-time codes are off.")

    async def change_password(self, request: web.Request) -> web.Response:
        user = await self.auth.require_page(request)
        form = await request.post()
        current, new = str(form.get("current", "")), str(form.get("new", ""))
        if new != str(form.get("again", "")):
            return await self.account(request, "The two new passwords differ.", 400)
        if new == current:
            return await self.account(request, "The new password must differ from the current one.", 400)
        why = await self._password_ok(request, user.name, current)
        if why:
            return await self.account(request, why, 400)
        address = self.auth.client_address(request)
        found = self.auth.session_of(request)
        try:
            await self.auth.users.set_password(user.name, new, keep_session=found[1] if found else "")
        except UserError as exc:
            return await self.account(request, str(exc), 400)
        ua = request.headers.get("User-Agent", "")
        self.auth.signin_log.add(Level.INFO, describe("password-changed", user.name, address, ua))
        return await self.account(request, "Password changed; your other sessions are signed out.")

    async def end_sessions(self, request: web.Request) -> web.Response:
        user = await self.auth.require_page(request)
        form = await request.post()
        found = self.auth.session_of(request)
        keep = found[1] if found and form.get("keep") == "this" else ""
        n = await self.auth.users.end_sessions(user.name, keep=keep)
        if not keep:
            raise web.HTTPFound("/login")
        return await self.account(request, f"Signed out {n} other session(s).")

    async def signins(self, request: web.Request) -> web.Response:
        user = await self.auth.require_page(request)
        q = request.query.get("q", "").strip()[:200]
        rows, trouble = [], ""
        bus = self.auth.bus
        if bus is None:
            trouble = "no bus: the sign-in log is not available here"
        else:
            try:
                reply = await bus.call(
                    LOG_QUERY,
                    LogQuery(source_kind=SIGN_IN_SOURCE_KIND, text=q or None, limit=LOG_ROWS),
                    timeout=5.0,
                )
                for r in reply.records:
                    level = (
                        Level(r.level).name.lower() if r.level in Level._value2member_map_ else str(r.level)
                    )
                    rows.append(
                        f'<tr class="lvl-{esc(level)}"><td>{when(r.ts)}</td><td>{esc(level)}</td>'
                        f"<td><code>{esc(r.message)}</code></td></tr>"
                    )
            except Exception as exc:  # the log server is down or absent: the rest of the page still works
                trouble = f"the log server did not answer ({type(exc).__name__})"
        locked = []
        for name, failures, left in self.auth.limits.limits.locked_accounts(time.time()):
            button = (
                f'<form method="post" action="{SIGNINS_PATH}/unlock"><input type="hidden" name="account" '
                f'value="{esc(name)}"><button type="submit">Unlock</button></form>'
                if user.admin
                else ""
            )
            locked.append(
                f'<tr data-account="{esc(name)}"><td>{esc(name)}</td><td>{failures}</td>'
                f"<td>{left:.0f} s</td><td>{button}</td></tr>"
            )
        body = f"""<div class="panel"><h2>Waiting after failed passwords</h2>
<table id="locked"><thead><tr><th>account</th><th>failures</th><th>waits</th><th></th></tr></thead>
<tbody>{"".join(locked) or '<tr><td colspan="4" class="muted">none</td></tr>'}</tbody></table></div>
<div class="panel"><h2>Sign-in log</h2>
<form method="get" action="{SIGNINS_PATH}"><input name="q" value="{esc(q)}" placeholder="user, address, failed, refused…">
<button type="submit">Search</button></form>
{f'<p class="muted">{esc(trouble)}</p>' if trouble else ""}
<table id="signin-log"><thead><tr><th>time (UTC)</th><th>level</th><th>what</th></tr></thead>
<tbody>{"".join(rows)}</tbody></table>
<p class="muted">Also on the <a href="/logs?kind={SIGN_IN_SOURCE_KIND}">Logs page</a> and with
<code>foto3d logs --kind {SIGN_IN_SOURCE_KIND}</code>.</p></div>"""
        return render_page(request, "Sign-ins", body)

    async def unlock(self, request: web.Request) -> web.Response:
        user = await self.auth.require_page(request)
        if not user.admin:
            raise web.HTTPForbidden(text="only an administrator may unlock")
        form = await request.post()
        account = str(form.get("account", "")).strip().lower()[:128]
        if account:
            self.auth.limits.record(SignInUnlocked(account=account, by=user.name, at=time.time()))
            ua = request.headers.get("User-Agent", "")
            self.auth.signin_log.add(
                Level.WARNING,
                describe("unlocked", account, self.auth.client_address(request), ua, f"by={user.name}"),
            )
        raise web.HTTPFound(SIGNINS_PATH)
