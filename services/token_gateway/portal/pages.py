"""The portal's pages: a customer's models, one model (live preview, embed snippets, the viewer
settings it may change), its viewer keys (issue, revoke), its webhook endpoints (add, remove) and
its analytics.

Every query starts from the signed-in account's customer (:func:`member_of`), never from the
URL: a model or key of another customer answers exactly like one that does not exist (404).
Keys are issued and revoked through the gateway's own :class:`CredentialManager`, as staff's
are (the same events on the credentials stream), recorded as done by ``portal:<account>``.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import UTC, datetime, timedelta

from aiohttp import web

from foto3d.libs.bus.connection import Bus
from foto3d.libs.viewer import assets
from foto3d.libs.web.layout import esc
from foto3d.proto.api import ServiceError
from foto3d.proto.gateway import PORTAL_ACTOR_PREFIX, CredentialKind, RevokeRequest
from foto3d.proto.objects import CUSTOMER_VIEWER, CustomerViewerReply, CustomerViewerRequest
from foto3d.proto.webhooks import (
    WEBHOOK_ADD,
    WEBHOOK_DELIVERIES,
    WEBHOOK_LIST,
    WEBHOOK_REMOVE,
    CustomerRef,
    DeliveryView,
    EndpointAdd,
    EndpointRef,
    EndpointView,
)
from foto3d.services.token_gateway import embed, sketch
from foto3d.services.token_gateway.analytics import QUANTILES
from foto3d.services.token_gateway.credentials import Credential
from foto3d.services.token_gateway.links import expiry
from foto3d.services.token_gateway.manage import CredentialManager, issue_request
from foto3d.services.token_gateway.objects import ObjectState
from foto3d.services.token_gateway.parts import GatewayParts
from foto3d.services.token_gateway.portal import chart, viewer_form
from foto3d.services.token_gateway.portal.accounts import Member
from foto3d.services.token_gateway.portal.layout import PORTAL, page, redirect
from foto3d.services.token_gateway.portal.signin import member_of

KEYS_PATH = f"{PORTAL}/keys"
WEBHOOKS_PATH = f"{PORTAL}/webhooks"
ANALYTICS_PATH = f"{PORTAL}/analytics"
MODEL_PATH = f"{PORTAL}/models/"
DAY_CHOICES = (7, 30, 90, 365)
# Days of sums kept in memory (each a few domains' views and sketches), least recently read out first.
SUMS_CACHE_DAYS = 100_000
Sums = tuple[dict[tuple[str, str], int], dict[tuple[str, str], dict[int, int]]]


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d") if ts else "never"


def _stamp(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")


def _status(state: ObjectState) -> str:
    return state.effective_status.value if state.version else "unpublished"


def _not_found(request: web.Request, m: Member) -> web.Response:
    return page(
        request,
        "Not found",
        '<div class="panel"><p>No such model.</p></div>',
        customer=m.customer,
        status=404,
    )


def _actor(m: Member) -> str:
    """Who the portal's actions are recorded as done by."""
    return f"{PORTAL_ACTOR_PREFIX}{m.name}"


def _key_state(c: Credential) -> str:
    if c.revoked_at is not None:
        return "revoked"
    return "active" if c.usable() else "expired"


class PortalPages:
    def __init__(self, parts: GatewayParts, manager: CredentialManager, bus: Bus | None = None) -> None:
        self.parts = parts
        self.manager = manager
        self.bus = bus
        self._sums: OrderedDict[tuple[str, str], tuple[tuple[int, int], Sums]] = OrderedDict()

    def routes(self) -> list[web.AbstractRouteDef]:
        return [
            web.get(f"{PORTAL}/", self.models),
            web.get(MODEL_PATH + "{object_id}", self.model),
            web.get(MODEL_PATH + "{object_id}/preview", self.preview),
            web.post(MODEL_PATH + "{object_id}/viewer", self.save_viewer),
            web.get(KEYS_PATH, self.keys),
            web.post(KEYS_PATH, self.issue),
            web.post(KEYS_PATH + "/{credential_id}/revoke", self.revoke),
            web.get(ANALYTICS_PATH, self.analytics),
            web.get(WEBHOOKS_PATH, self.webhooks),
            web.post(WEBHOOKS_PATH, self.add_endpoint),
            web.post(WEBHOOKS_PATH + "/{endpoint_id}/remove", self.remove_endpoint),
        ]

    # ---- scoped lookups ---------------------------------------------------------------

    def own_models(self, m: Member) -> list[ObjectState]:
        return sorted(
            (o for o in self.parts.index.objects.values() if o.customer == m.customer),
            key=lambda o: (o.name or o.object_id).lower(),
        )

    def own_model(self, m: Member, object_id: str) -> ObjectState | None:
        state = self.parts.index.get(object_id)
        return state if state is not None and state.customer == m.customer else None

    def own_keys(self, m: Member) -> list[Credential]:
        return [
            c
            for c in self.parts.store.list_credentials(m.customer, include_revoked=True)
            if c.kind == CredentialKind.PUBLISHABLE
        ]

    # ---- pages ------------------------------------------------------------------------

    async def models(self, request: web.Request) -> web.Response:
        m = member_of(request)
        cards = []
        for o in self.own_models(m):
            st = _status(o)
            cards.append(
                f'<a class="card model" href="{MODEL_PATH}{esc(o.object_id)}" data-object="{esc(o.object_id)}">'
                f"<b>{esc(o.name or o.object_id)}</b><div class=id>{esc(o.object_id)}</div>"
                f'<span class="badge {st}">{st}</span>'
                f"{f' <span class=muted>version {o.version}</span>' if o.version else ''}</a>"
            )
        live = sum(1 for o in self.own_models(m) if o.live)
        body = (
            f'<p class="muted">{len(cards)} model(s), {live} live. A live model is shown by your viewer keys '
            "on your sites; a disabled one answers as not available.</p>"
            + (
                f'<div class="grid" id="models">{"".join(cards)}</div>'
                if cards
                else '<div class="panel">No models yet.</div>'
            )
        )
        return page(request, "Your 3D models", body, customer=m.customer)

    async def viewer_settings(self, m: Member, object_id: str) -> CustomerViewerReply | None:
        """The customer's fields of the model's saved viewer settings (None: the catalog is away)."""
        if self.bus is None:
            return None
        ask = CustomerViewerRequest(object_id=object_id, customer=m.customer, actor=_actor(m))
        try:
            # A page view does not wait for a catalog that is away (restarting, failing over):
            # the form says so and the rest of the page is served at once.
            return await self.bus.call(CUSTOMER_VIEWER, ask, timeout=2.0, no_responder_grace=0.0)
        except Exception:  # the rest of the page still works
            return None

    async def model(
        self,
        request: web.Request,
        note: str = "",
        error: str = "",
        viewer: CustomerViewerReply | None = None,
        status: int = 200,
    ) -> web.Response:
        m = member_of(request)
        state = self.own_model(m, request.match_info["object_id"])
        if state is None:
            return _not_found(request, m)
        oid = state.object_id
        if viewer is None:
            viewer = await self.viewer_settings(m, oid)
        banner = f'<p class="notice" role="status">{esc(note)}</p>' if note else ""
        if error:
            banner += f'<p class="error" role="alert">{esc(error)}</p>'
        st = _status(state)
        keys = [c for c in self.own_keys(m) if c.usable() and c.covers(oid)]
        if not state.live:
            preview = '<p class="muted">Not live: there is nothing to preview.</p>'
        elif not keys:
            preview = (
                f'<p class="muted">Issue a <a href="{KEYS_PATH}">viewer key</a> to see the live preview.</p>'
            )
        else:
            preview = (
                f'<iframe class="preview" src="{MODEL_PATH}{esc(oid)}/preview" title="Live preview of '
                f'{esc(state.name or oid)}" allow="fullscreen" loading="lazy"></iframe>'
            )
        snippets = []
        for c in keys:
            url = f"{self.parts.base_url}/embed/{oid}?key={c.prefix}…"
            for origin in c.origins:
                snippets.append(
                    f'<div class="snippet" data-origin="{esc(origin)}"><h3>On {esc(origin)} '
                    f'<span class="muted">(key {esc(c.label or c.credential_id)})</span></h3>'
                    f"<pre>{esc(assets.iframe_snippet(embed_url=url))}</pre></div>"
                )
        snippet_note = (
            "Replace <code>…</code> with the whole key (shown once when it was issued); each key works "
            "only on its own sites."
            if snippets
            else f'No viewer key covers this model yet: <a href="{KEYS_PATH}">issue one</a>.'
        )
        body = f"""{banner}<div class="panel"><p><span class="badge {st}">{st}</span>
{f"version {state.version}" if state.version else ""} · <code>{esc(oid)}</code></p>{preview}</div>
<div class="panel" id="snippets"><h2>Embed it on your sites</h2><p class="muted">{snippet_note}</p>
{"".join(snippets)}</div>
{viewer_form.form_html(f"{MODEL_PATH}{esc(oid)}/viewer", viewer)}"""
        return page(request, state.name or oid, body, customer=m.customer, status=status)

    async def save_viewer(self, request: web.Request) -> web.Response:
        """Save the customer's viewer fields as a new settings version (the catalog checks the
        model is this customer's too, and keeps staff's framing)."""
        m = member_of(request)
        state = self.own_model(m, request.match_info["object_id"])
        if state is None:
            return _not_found(request, m)
        if self.bus is None:
            return await self.model(request, error="Viewer settings are not available here.", status=503)
        req = viewer_form.request_from(await request.post(), state.object_id, m.customer, _actor(m))
        try:
            reply = await self.bus.call(CUSTOMER_VIEWER, req, timeout=10.0)
        except ServiceError as exc:
            return await self.model(request, error=exc.description, status=400)
        note = (
            f"Saved as version {reply.version}: your live model shows it from its next publish."
            if reply.changed
            else "Nothing changed."
        )
        return await self.model(request, note=note, viewer=reply)

    async def preview(self, request: web.Request) -> web.Response:
        """The embed page as a visitor gets it, for one of the customer's own usable keys: the same
        pass ``/embed`` hands out, bound to this model and the portal's origin."""
        m = member_of(request)
        state = self.own_model(m, request.match_info["object_id"])
        keys = [c for c in self.own_keys(m) if c.usable() and state is not None and c.covers(state.object_id)]
        if state is None or not state.live or not keys:
            return _not_found(request, m)
        try:
            b = assets.bundle()
        except assets.ViewerBundleMissing:
            return page(
                request, "Preview", '<p class="muted">The viewer is not installed here.</p>', status=503
            )
        origin = self.parts.base_url
        pass_ = embed.issue(
            self.parts.signer,
            state.object_id,
            origin,
            keys[0].credential_id,
            expiry(self.parts.cfg.link_ttl_s),
        )
        doc = assets.embed_page_html(
            object_id=state.object_id,
            api_base=f"{embed.EMBED_API_PREFIX}/{pass_}",
            key="",
            bundle_url=assets.bundle_url(),
            sri=b.sri,
            options={"formats": assets.EMBED_DEFAULT_FORMATS},
        )
        resp = web.Response(text=doc, content_type="text/html")
        resp.headers["Cache-Control"] = "no-store"
        resp.headers["Content-Security-Policy"] = "frame-ancestors 'self'"
        return resp

    async def keys(
        self, request: web.Request, note: str = "", error: str = "", token: str = "", status: int = 200
    ) -> web.Response:
        m = member_of(request)
        rows = []
        for c in self.own_keys(m):
            state = _key_state(c)
            revoke = (
                f'<form method="post" action="{KEYS_PATH}/{esc(c.credential_id)}/revoke">'
                f'<button type="submit" class="danger">Revoke</button></form>'
                if state == "active"
                else ""
            )
            rows.append(
                f'<tr data-key="{esc(c.credential_id)}"><td><code>{esc(c.prefix)}…</code><br>'
                f'<span class="muted">{esc(c.label)}</span></td>'
                f"<td>{'<br>'.join(esc(o) for o in c.origins)}</td>"
                f"<td>{'all' if not c.models else '<br>'.join(esc(x) for x in c.models)}</td>"
                f'<td><span class="badge {state}">{state}</span><br><span class="muted">until {_when(c.expires_at)}</span></td>'
                f"<td>{revoke}</td></tr>"
            )
        banner = ""
        if note:
            banner += f'<p class="notice" role="status">{esc(note)}</p>'
        if error:
            banner += f'<p class="error" role="alert">{esc(error)}</p>'
        if token:
            banner += (
                f'<div class="panel" id="new-key"><h2>Your new key</h2><p>Copy it now: it is shown only '
                f'once (we keep only its hash).</p><pre id="new-token">{esc(token)}</pre></div>'
            )
        body = f"""{banner}<div class="panel"><h2>Viewer keys</h2><p class="muted">Publishable keys sit in
your web pages; each works only from its allowed origins (your sites), read-only.</p>
<div class="scroll"><table id="keys"><thead><tr><th>key</th><th>allowed origins</th><th>models</th>
<th>state</th><th></th></tr></thead><tbody>{"".join(rows) or '<tr><td colspan="5" class="muted">none yet</td></tr>'}
</tbody></table></div></div>
<div class="panel"><h2>Issue a key</h2><form method="post" action="{KEYS_PATH}" class="stack" id="issue-form">
<label>What it is for <input name="label" maxlength="200" placeholder="shop product pages"></label>
<label>Allowed origins, one per line <textarea name="origins" rows="3" required
placeholder="https://shop.example.com"></textarea></label>
<label>Valid for (days) <input name="days" type="number" min="1" max="3650" value="365"></label>
<button type="submit" class="primary">Issue key</button></form></div>"""
        return page(request, "Viewer keys", body, customer=m.customer, status=status)

    async def issue(self, request: web.Request) -> web.Response:
        m = member_of(request)
        form = await request.post()
        origins = [o.strip().rstrip("/") for o in str(form.get("origins", "")).split() if o.strip()]
        try:
            days = float(str(form.get("days", "365")) or "365")
            req = issue_request(
                {
                    "customer": m.customer,  # the session's, never the form's
                    "kind": CredentialKind.PUBLISHABLE.value,
                    "label": str(form.get("label", ""))[:200],
                    "origins": origins,
                    "expires_in_days": days,
                    "actor": _actor(m),
                }
            )
            reply = await self.manager.issue(req)
        except ValueError:
            return await self.keys(request, error="The number of days is not a number.", status=400)
        except ServiceError as exc:
            return await self.keys(request, error=exc.description, status=400)
        return await self.keys(request, note="Key issued.", token=reply.token)

    async def revoke(self, request: web.Request) -> web.Response:
        m = member_of(request)
        cid = request.match_info["credential_id"]
        cred = next((c for c in self.own_keys(m) if c.credential_id == cid), None)
        if cred is None:
            return _not_found(request, m)
        await self.manager.revoke(
            RevokeRequest(credential_id=cid, actor=_actor(m), reason="revoked in the portal")
        )
        return redirect(KEYS_PATH)

    async def webhooks(
        self,
        request: web.Request,
        note: str = "",
        error: str = "",
        created: EndpointView | None = None,
        status: int = 200,
    ) -> web.Response:
        """The customer's webhook endpoints and their delivery log, read from the catalog (which
        keeps and sends them) for the session's customer only."""
        m = member_of(request)
        endpoints: list[EndpointView] = []
        log: list[DeliveryView] = []
        trouble = ""
        if self.bus is None:
            trouble = "The webhook log is not available here."
        else:
            try:
                ref = CustomerRef(customer=m.customer, limit=100)
                endpoints = await self.bus.call(WEBHOOK_LIST, ref, timeout=5.0)
                log = await self.bus.call(WEBHOOK_DELIVERIES, ref, timeout=5.0)
            except Exception as exc:  # the catalog is away: the rest of the portal still works
                trouble = f"The webhook log could not be read just now ({type(exc).__name__}); try again."
        # Belt and braces: the catalog answers for the customer asked about, and only that one.
        endpoints = [e for e in endpoints if e.customer == m.customer]
        log = [d for d in log if d.customer == m.customer]
        urls = {e.endpoint_id: e.url for e in endpoints}
        ep_rows = "".join(
            f'<tr data-endpoint="{esc(e.endpoint_id)}"><td><code>{esc(e.url)}</code></td>'
            f"<td>{_when(e.created)}</td>"
            f'<td><form method="post" action="{WEBHOOKS_PATH}/{esc(e.endpoint_id)}/remove">'
            f'<button type="submit" class="danger">Remove</button></form></td></tr>'
            for e in endpoints
        )
        log_rows = "".join(
            f'<tr data-delivery="{esc(d.delivery_id)}"><td>{_stamp(d.created)}</td><td>{esc(d.type)}</td>'
            f"<td><code>{esc(urls.get(d.endpoint_id, d.endpoint_id))}</code></td>"
            f'<td><span class="badge {esc(d.state)}">{esc(d.state)}</span></td><td>{d.attempts}</td>'
            f"<td>{d.last_status or '-'} {esc(d.last_error[:120])}</td></tr>"
            for d in log
        )
        banner = f'<p class="error" role="alert">{esc(trouble)}</p>' if trouble else ""
        if note:
            banner += f'<p class="notice" role="status">{esc(note)}</p>'
        if error:
            banner += f'<p class="error" role="alert">{esc(error)}</p>'
        if created is not None and created.secret:
            banner += (
                f'<div class="panel" id="new-secret"><h2>Signing secret of {esc(created.url)}</h2><p>Copy it '
                "now: it is shown only this once. Your endpoint checks each delivery's "
                f'<code>F3D-Signature</code> with it.</p><pre id="endpoint-secret">{esc(created.secret)}</pre></div>'
            )
        body = f"""{banner}
<div class="panel"><h2>Endpoints</h2><p class="muted">We send <code>model.published</code>,
<code>model.updated</code>, <code>model.disabled</code> and <code>subscription.ending</code> to these
addresses, signed with your secret.</p><div class="scroll">
<table id="endpoints"><thead><tr><th>address</th><th>since</th><th></th></tr></thead><tbody>
{ep_rows or '<tr><td colspan="3" class="muted">none</td></tr>'}</tbody></table></div></div>
<div class="panel"><h2>Add an endpoint</h2><form method="post" action="{WEBHOOKS_PATH}" class="stack"
id="endpoint-form"><label>Address (https://…) <input name="url" type="url" maxlength="2000" required
placeholder="https://shop.example.com/hooks/foto3d"></label>
<button type="submit" class="primary">Add endpoint</button></form></div>
<div class="panel"><h2>Deliveries</h2><div class="scroll"><table id="deliveries"><thead><tr><th>when (UTC)</th>
<th>event</th><th>to</th><th>state</th><th>tries</th><th>last answer</th></tr></thead><tbody>
{log_rows or '<tr><td colspan="6" class="muted">none yet</td></tr>'}</tbody></table></div></div>"""
        return page(request, "Webhooks", body, customer=m.customer, status=status)

    async def add_endpoint(self, request: web.Request) -> web.Response:
        """Add an endpoint for the session's customer (never the form's); its secret is shown once."""
        m = member_of(request)
        form = await request.post()
        if self.bus is None:
            return await self.webhooks(request, error="Webhooks are not available here.", status=503)
        add = EndpointAdd(
            customer=m.customer,
            url=str(form.get("url", "")).strip(),
            actor=_actor(m),
        )
        try:
            created = await self.bus.call(WEBHOOK_ADD, add, timeout=5.0)
        except ServiceError as exc:
            return await self.webhooks(request, error=exc.description, status=400)
        return await self.webhooks(request, note="Endpoint added.", created=created)

    async def remove_endpoint(self, request: web.Request) -> web.Response:
        """Remove one of the customer's endpoints; another customer's id answers as not found
        (the catalog removes any id it is given, so the owner is checked here first)."""
        m = member_of(request)
        if self.bus is None:
            return await self.webhooks(request, error="Webhooks are not available here.", status=503)
        eid = request.match_info["endpoint_id"]
        own = await self.bus.call(WEBHOOK_LIST, CustomerRef(customer=m.customer), timeout=5.0)
        if not any(e.endpoint_id == eid and e.customer == m.customer for e in own):
            return await self.webhooks(request, error="No such endpoint.", status=404)
        ref = EndpointRef(endpoint_id=eid, actor=_actor(m))
        try:
            await self.bus.call(WEBHOOK_REMOVE, ref, timeout=5.0)
        except ServiceError as exc:
            return await self.webhooks(request, error=exc.description, status=400)
        return redirect(WEBHOOKS_PATH)

    async def sums(self, customer: str, days: list[str]) -> Sums:
        """Views and first-frame sketches per (day, domain). Each day's sums are read once and kept
        until a fold of beacon sums touches that day (mostly today's): a year of a busy customer
        is a few hundred ms of sqlite, one day a millisecond."""
        store = self.parts.store
        stale = [
            d
            for d in days
            if (hit := self._sums.get((customer, d))) is None
            or hit[0] != store.beacon_day_version(customer, d)
        ]
        if stale:
            versions = {d: store.beacon_day_version(customer, d) for d in stale}
            views, sketches = await store.views_and_first_frames(customer, stale)
            fresh: dict[str, Sums] = {d: ({}, {}) for d in stale}
            for key, n in views.items():
                fresh[key[0]][0][key] = n
            for key, sk in sketches.items():
                fresh[key[0]][1][key] = sk
            for d in stale:
                self._sums[(customer, d)] = (versions[d], fresh[d])
        out: Sums = ({}, {})
        for d in days:
            key = (customer, d)
            self._sums.move_to_end(key)
            day_views, day_sketches = self._sums[key][1]
            out[0].update(day_views)
            out[1].update(day_sketches)
        while len(self._sums) > SUMS_CACHE_DAYS:
            self._sums.popitem(last=False)
        return out

    async def analytics(self, request: web.Request) -> web.Response:
        m = member_of(request)
        try:
            days = int(request.query.get("days", "30"))
        except ValueError:
            days = 30
        days = days if days in DAY_CHOICES else 30
        today = datetime.now(UTC).date()
        day_list = [(today - timedelta(days=days - 1 - i)).isoformat() for i in range(days)]
        domain_views, per_domain = await self.sums(m.customer, day_list)
        views = dict.fromkeys(day_list, 0)
        per_day: dict[str, dict[int, int]] = {d: {} for d in day_list}
        for (day, _domain), n in domain_views.items():
            if day in views:
                views[day] += n
        for (day, _domain), s in per_domain.items():
            if day in per_day:
                sketch.merge(per_day[day], s)
        series: dict[str, list[int | None]] = {"p50": [], "p75": [], "p95": []}
        for d in day_list:
            qs = sketch.quantiles(per_day[d], QUANTILES)
            for name, q in zip(series, qs, strict=True):
                series[name].append(q)
        table = []
        for d, domain in sorted(domain_views, reverse=True):
            p50, p75, p95 = sketch.quantiles(per_domain.get((d, domain), {}), QUANTILES)
            table.append(
                f'<tr data-day="{d}" data-domain="{esc(domain)}"><td>{d}</td><td>{esc(domain or "-")}</td>'
                f"<td>{domain_views[(d, domain)]}</td><td>{_ms(p50)}</td><td>{_ms(p75)}</td><td>{_ms(p95)}</td></tr>"
            )
        choices = " · ".join(
            f'<a href="{ANALYTICS_PATH}?days={n}">{n} days</a>' if n != days else f"<b>{n} days</b>"
            for n in DAY_CHOICES
        )
        total = sum(views.values())
        body = f"""<p class="muted">{choices}. From the viewer on your visitors' devices: no cookies, no
personal data. Days are UTC.</p>
<div class="panel"><h2>Views per day <span class="muted" id="total-views">({total} in {days} days)</span></h2>
{chart.bars(day_list, [views[d] for d in day_list], "views per day")}</div>
<div class="panel"><h2>Time to first frame</h2>{chart.legend(list(series))}
{chart.lines(day_list, series, "first frame p50, p75, p95 per day (ms)")}</div>
<div class="panel"><h2>Per day and site</h2><div class="scroll"><table id="per-domain"><thead><tr><th>day</th>
<th>site</th><th>views</th><th>first frame p50</th><th>p75</th><th>p95</th></tr></thead><tbody>
{"".join(table) or '<tr><td colspan="6" class="muted">no views yet</td></tr>'}</tbody></table></div></div>"""
        return page(request, "Analytics", body, customer=m.customer)


def _ms(v: int | None) -> str:
    return "-" if v is None else f"{v} ms"
