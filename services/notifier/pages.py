"""Dashboard pages (Status, Alerts) and their JSON APIs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web

from foto3d.libs.web.layout import esc, render_page
from foto3d.services.notifier.parts import NotifierParts

RouteDef = web.AbstractRouteDef
STATIC = Path(__file__).parent / "static"


def routes(parts: NotifierParts) -> list[RouteDef]:
    async def status_page(request: web.Request) -> web.Response:
        body = """
<div class="cards" id="hb-cards"></div>
<div class="toolbar"><span class="live-dot on"></span><span class="muted">refreshes every 2 s</span></div>
<table class="data" id="participants"><thead><tr><th>State</th><th>Kind</th><th>Id</th><th>Host</th>
<th>Version</th><th>Last seen</th><th>Job / progress</th></tr></thead><tbody></tbody></table>"""
        return render_page(request, "Status", body, scripts=["/notifier/static/status.js"])

    async def alerts_page(request: web.Request) -> web.Response:
        mode = parts.mail
        body = f"""
<div class="cards" id="alert-cards"></div>
<p class="muted">Mail: <span class="mono">{esc(mode)}</span></p>
<h2>Open alerts</h2>
<table class="data" id="open-alerts"><thead><tr><th>Severity</th><th>Alert</th><th>Count</th><th>Opened</th>
<th>Last</th><th>Mails</th></tr></thead><tbody></tbody></table>
<h2>Recent messages</h2>
<table class="data" id="outbox"><thead><tr><th>State</th><th>Created</th><th>Channel</th><th>To</th>
<th>Subject</th><th>Attempts</th><th>Last error</th></tr></thead><tbody></tbody></table>
<h2>Recently resolved</h2>
<table class="data" id="resolved"><thead><tr><th>Alert</th><th>Count</th><th>Opened</th><th>Resolved</th>
<th>Why</th></tr></thead><tbody></tbody></table>"""
        return render_page(request, "Alerts", body, scripts=["/notifier/static/alerts.js"])

    async def api_status(request: web.Request) -> web.Response:
        return web.json_response({"participants": parts.watch.snapshot()})

    async def api_alerts(request: web.Request) -> web.Response:
        store = parts.store
        health = parts.health()
        data: dict[str, Any] = {
            "health": health.as_dict(),
            "open": [a.as_dict() for a in await store.open_alerts()],
            "resolved": [a.as_dict() for a in await store.recent_alerts(30)],
            "outbox": [r.as_dict() for r in await store.recent_outbox(50)],
            "outbox_counts": await store.outbox_counts(),
        }
        return web.json_response(data)

    async def api_message(request: web.Request) -> web.Response:
        try:
            row_id = int(request.match_info["id"])
        except ValueError:
            return web.json_response({"error": "message id must be a number"}, status=400)
        row = await parts.store.outbox_row(row_id)
        if row is None or row.channel == "bus":
            return web.json_response({"error": f"no message {row_id}"}, status=404)
        ctype = "application/json" if row.channel == "webhook" else "text/plain"
        return web.Response(body=row.payload, content_type=ctype, charset="utf-8")

    return [
        web.get("/status", status_page),
        web.get("/alerts", alerts_page),
        web.get("/api/status", api_status),
        web.get("/api/alerts", api_alerts),
        web.get(r"/api/alerts/messages/{id}", api_message),
        web.static("/notifier/static", STATIC),
    ]
