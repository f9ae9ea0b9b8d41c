"""Staff pages on the dashboard: customers' credentials (issue, list, revoke) and usage per day.

These sit on the staff dashboard, behind staff sign-in, never on the customer listener.
A new credential's token is shown once, on the page that issued it, and is kept nowhere.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from aiohttp import web

from foto3d.libs.auth.web import Auth
from foto3d.libs.config import Settings
from foto3d.libs.web.layout import esc, render_page
from foto3d.proto.api import ServiceError
from foto3d.proto.gateway import CredentialKind, RevokeRequest, UsageQuery
from foto3d.proto.rules import CUSTOMER_PART, MAX_CUSTOMER
from foto3d.services.token_gateway.manage import CredentialManager, issue_request
from foto3d.services.token_gateway.parts import GatewayParts

CREDENTIALS_PATH = "/customers/access"
USAGE_PATH = "/customers/usage"


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC") if ts else "never"


def _state(info_revoked: float | None, expires: float | None) -> str:
    if info_revoked:
        return '<span class="badge down">revoked</span>'
    if expires is not None and expires <= time.time():
        return '<span class="badge degraded">expired</span>'
    return '<span class="badge ok">active</span>'


def routes(settings: Settings, parts: GatewayParts, manager: CredentialManager) -> list[web.AbstractRouteDef]:
    auth = Auth(settings)

    def credentials_body(customer: str, shown: str = "", error: str = "") -> str:
        creds = manager.list_credentials(customer or None)
        rows = "".join(
            f"<tr data-credential='{esc(c.credential_id)}'><td>{esc(c.customer)}</td><td>{esc(c.kind.value)}</td>"
            f"<td><code>{esc(c.prefix)}…</code></td><td>{esc(c.label)}</td>"
            f"<td>{esc(', '.join(c.origins) or '—')}</td><td>{esc(', '.join(c.models) or 'all')}</td>"
            f"<td>{_when(c.expires_at)}</td><td>{_state(c.revoked_at, c.expires_at)}</td>"
            f"<td>{esc(c.created_by)}</td><td>"
            + (
                ""
                if c.revoked_at
                else f'<form method="post" action="{CREDENTIALS_PATH}/revoke">'
                f'<input type="hidden" name="credential_id" value="{esc(c.credential_id)}">'
                '<button type="submit">Revoke</button></form>'
            )
            + "</td></tr>"
            for c in creds
        )
        table = (
            '<table class="data"><thead><tr><th>Customer</th><th>Kind</th><th>Token</th><th>Label</th>'
            "<th>Origins</th><th>Models</th><th>Expires</th><th>State</th><th>Issued by</th><th></th></tr></thead>"
            f"<tbody>{rows}</tbody></table>"
            if rows
            else '<div class="panel empty">No credentials yet.</div>'
        )
        notice = ""
        if shown:
            notice = (
                '<div class="panel" id="new-token"><h2>New credential</h2>'
                "<p>Copy it now: it is shown only once and cannot be read again.</p>"
                f'<pre class="snippet"><code>{esc(shown)}</code></pre></div>'
            )
        if error:
            notice += f'<div class="panel error">{esc(error)}</div>'
        kinds = "".join(f'<option value="{k.value}">{k.value}</option>' for k in CredentialKind)
        form = f"""<div class="panel"><h2>Issue a credential</h2>
<form method="post" action="{CREDENTIALS_PATH}/issue" class="stack">
<label>Customer <input name="customer" required pattern="{CUSTOMER_PART}" maxlength="{MAX_CUSTOMER}" value="{esc(customer)}"></label>
<label>Kind <select name="kind">{kinds}</select></label>
<label>Label <input name="label" maxlength="200"></label>
<label>Allowed origins (publishable keys; one per line) <textarea name="origins" rows="2"></textarea></label>
<label>Only these models (ids; empty = all of the customer's) <textarea name="models" rows="2"></textarea></label>
<label>Expires in days (empty = never, secret tokens only) <input name="expires_in_days" value="90"></label>
<button type="submit">Issue</button></form></div>"""
        return f"{notice}{table}{form}<p><a href='{USAGE_PATH}'>Usage per customer and day</a></p>"

    async def credentials_page(request: web.Request) -> web.Response:
        await auth.require_page(request)
        return render_page(request, "Customers' access", credentials_body(request.query.get("customer", "")))

    async def issue(request: web.Request) -> web.Response:
        user = await auth.require_page(request)
        form = await request.post()
        days_text = str(form.get("expires_in_days", "")).strip()
        customer = str(form.get("customer", "")).strip()
        try:
            days = float(days_text) if days_text else None
        except ValueError:
            return render_page(
                request, "Customers' access", credentials_body(customer, error="days must be a number")
            )
        kind_text = str(form.get("kind", ""))
        if kind_text not in {k.value for k in CredentialKind}:
            return render_page(request, "Customers' access", credentials_body(customer, error="unknown kind"))
        try:
            reply = await manager.issue(
                issue_request(
                    {
                        "customer": customer,
                        "kind": kind_text,
                        "label": str(form.get("label", "")).strip(),
                        "origins": str(form.get("origins", "")).split(),
                        "models": str(form.get("models", "")).split(),
                        "expires_in_days": days,
                        "actor": user.name,
                    }
                )
            )
        except ServiceError as exc:
            body = credentials_body(customer, error=exc.description)
        else:
            body = credentials_body(customer, shown=reply.token)
        resp = render_page(request, "Customers' access", body)
        resp.headers["Cache-Control"] = "no-store"  # the page holds a token
        return resp

    async def revoke(request: web.Request) -> web.Response:
        user = await auth.require_page(request)
        form = await request.post()
        try:
            await manager.revoke(
                RevokeRequest(
                    credential_id=str(form.get("credential_id", "")), actor=user.name, reason="dashboard"
                )
            )
        except ServiceError as exc:
            return render_page(request, "Customers' access", credentials_body("", error=exc.description))
        raise web.HTTPSeeOther(CREDENTIALS_PATH)

    async def usage_page(request: web.Request) -> web.Response:
        await auth.require_page(request)
        q = request.query
        query = UsageQuery(
            customer=q.get("customer") or None,
            object_id=q.get("object_id") or None,
            since=q.get("since") or None,
            until=q.get("until") or None,
        )
        rows = await parts.store.usage(query)
        body_rows = "".join(
            f"<tr><td>{esc(r.day)}</td><td>{esc(r.customer)}</td><td>{esc(r.object_id or '—')}</td>"
            f"<td class='num'>{r.requests}</td><td class='num'>{r.denied}</td><td class='num'>{r.bytes}</td></tr>"
            for r in rows
        )
        filters = f"""<form method="get" class="filters">
<input name="customer" placeholder="customer" value="{esc(query.customer or "")}">
<input name="object_id" placeholder="object id" value="{esc(query.object_id or "")}">
<input name="since" placeholder="since YYYY-MM-DD" value="{esc(query.since or "")}">
<input name="until" placeholder="until YYYY-MM-DD" value="{esc(query.until or "")}">
<button type="submit">Filter</button></form>"""
        table = (
            '<table class="data usage"><thead><tr><th>Day (UTC)</th><th>Customer</th><th>Object</th>'
            f"<th>Requests</th><th>Refused</th><th>Bytes</th></tr></thead><tbody>{body_rows}</tbody></table>"
            if body_rows
            else '<div class="panel empty">No usage recorded for this filter.</div>'
        )
        return render_page(request, "Customers' usage", filters + table, active=CREDENTIALS_PATH)

    return [
        web.get(CREDENTIALS_PATH, credentials_page),
        web.post(CREDENTIALS_PATH + "/issue", issue),
        web.post(CREDENTIALS_PATH + "/revoke", revoke),
        web.get(USAGE_PATH, usage_page),
    ]
