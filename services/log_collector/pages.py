"""The dashboard's Logs page (``/logs``): filters, results, live tail, paging.

The filters live in the URL (``/logs?job=ID&level=warning``) so a link from a
mail or another page opens the same view.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from foto3d.libs.web.layout import render_page

STATIC = Path(__file__).parent / "static"
SCRIPT_URL = "/logs/static/logs.js"

LEVEL_OPTIONS = "".join(
    f'<option value="{v}">{t}</option>'
    for v, t in (
        ("", "any"),
        ("debug", "debug+"),
        ("info", "info+"),
        ("warning", "warning+"),
        ("error", "error+"),
        ("critical", "critical"),
    )
)

BODY = f"""
<form id="log-filters" class="filters panel" autocomplete="off">
  <label>Source<input name="source" placeholder="source id" size="14"></label>
  <label>Kind<input name="kind" placeholder="trainer, rig…" size="9"></label>
  <label>Job<input name="job" placeholder="job id" size="14"></label>
  <label>Object<input name="object" placeholder="object id" size="14"></label>
  <label>Host<input name="host" placeholder="host" size="10"></label>
  <label>Level<select name="level">{LEVEL_OPTIONS}</select></label>
  <label>Text<input name="q" type="search" placeholder="words in message or traceback" size="24"></label>
  <label>Since<input name="since" placeholder="15m, 2h, 1d, ISO" size="10"></label>
  <button type="submit" class="primary">Search</button>
  <button type="button" id="log-clear">Clear</button>
</form>
<div class="toolbar">
  <label class="toggle"><input type="checkbox" id="log-live"> Live</label>
  <span id="log-status" class="muted"></span>
</div>
<div class="panel">
<table class="data logs" id="log-table">
  <thead><tr><th>Time</th><th>Level</th><th>Source</th><th>Job / object</th><th>Message</th></tr></thead>
  <tbody></tbody>
</table>
<p id="log-empty" class="muted" hidden>No log records match these filters.</p>
<div class="toolbar"><button type="button" id="log-older" hidden>Load older</button></div>
</div>
<style>
table.logs td {{ padding-top: 3px; padding-bottom: 3px; vertical-align: top; }}
table.logs td.msg {{ width: 100%; white-space: pre-wrap; word-break: break-word;
  font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; }}
table.logs td.when, table.logs td.src, table.logs td.refs, table.logs td.lvl {{ white-space: nowrap; font-size: 12.5px; }}
table.logs td.when {{ font-variant-numeric: tabular-nums; }}
table.logs td.lvl span {{ padding: 0 6px; border-radius: 4px; font-weight: 600; font-size: 11.5px; }}
table.logs details pre {{ margin: 4px 0 0; padding: 6px 8px; background: rgba(0,0,0,.04); border-radius: 4px;
  white-space: pre-wrap; font-size: 12px; }}
table.logs tr.fresh td {{ animation: logfresh 1.5s ease-out; }}
table.logs .late-tag {{ padding: 0 5px; border-radius: 4px; font-size: 11px; font-weight: 600;
  background: #ffe8c2; color: #7a4b00; }}
@keyframes logfresh {{ from {{ background: #fffbe0; }} }}
/* Phone width: five columns leave the message a sliver one word wide (rows hundreds of px tall).
   Each record becomes a block instead: time, level, source and ids on one wrapping line, the
   message under them at full width. */
@media (max-width: 760px) {{
  table.logs thead {{ display: none; }}
  table.logs, table.logs tbody {{ display: block; white-space: normal; }}
  table.logs tr {{ display: flex; flex-wrap: wrap; align-items: baseline; gap: 0 8px; padding: 4px 8px;
    border-bottom: 1px solid var(--line); }}
  table.logs td {{ display: block; padding: 0; border: none; }}
  table.logs td.refs {{ white-space: normal; overflow-wrap: anywhere; }}
  table.logs td.msg {{ flex-basis: 100%; width: auto; }}
}}
</style>
"""


class LogsPage:
    def routes(self) -> list[web.AbstractRouteDef]:
        return [web.get("/logs", self.page), web.get(SCRIPT_URL, self.script)]

    async def page(self, request: web.Request) -> web.Response:
        return render_page(request, "Logs", BODY, scripts=[SCRIPT_URL])

    async def script(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "logs.js", headers={"Content-Type": "text/javascript"})
