"""The jobs page and the job detail page (served by every instance; their data: ``api.py``)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from foto3d.libs.web.layout import esc, render_page
from foto3d.proto.jobs import JobState

STATIC = Path(__file__).parent / "static"


class JobsPages:
    """Static shells: the pages fetch everything they show from the JSON API, so they need no parts."""

    def routes(self) -> list[web.AbstractRouteDef]:
        return [
            web.get("/jobs", self.page),
            web.get("/jobs/{job_id}", self.detail_page),
            web.get("/queue/static/{name}", self.static),
        ]

    async def static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        path = STATIC / name
        if "/" in name or not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path)

    async def page(self, request: web.Request) -> web.Response:
        options = "".join(f'<option value="{s.value}">{s.value}</option>' for s in JobState)
        body = f"""
<div class="cards" id="job-counts"></div>
<div class="panel" id="no-trainer" hidden></div>
<form class="filters" id="job-filters">
  <label>State<select name="state"><option value="">all</option>{options}</select></label>
  <label>Object<input name="object" placeholder="acme-chair-001" size="22"></label>
  <span class="toolbar"><span class="live-dot" id="live"></span><span class="muted" id="leader"></span></span>
</form>
<table class="data" id="jobs-table">
  <thead><tr><th>Job</th><th>Object</th><th>State</th><th>Priority</th><th>Attempt</th>
  <th>Progress</th><th>Trainer</th><th>Created</th><th>Duration</th><th>Note</th></tr></thead>
  <tbody><tr><td colspan="10" class="empty">Loading…</td></tr></tbody>
</table>"""
        return render_page(request, "Jobs", body, scripts=["/queue/static/jobs.js"])

    async def detail_page(self, request: web.Request) -> web.Response:
        job_id = request.match_info["job_id"]
        body = f"""
<div id="job-detail" data-job="{esc(job_id)}">
  <div class="toolbar"><a href="/jobs">← all jobs</a>
    <a id="logs-link" href="/logs?job={esc(job_id)}">Logs of this job</a>
    <span style="flex:1"></span>
    <button class="danger" id="cancel-btn" hidden>Cancel</button>
    <button class="secondary" id="requeue-btn" hidden>Requeue</button>
    <span class="live-dot" id="live"></span></div>
  <div class="cards" id="job-cards"></div>
  <div class="panel"><div class="progress"><span id="job-progress" style="width:0%"></span></div>
    <div class="muted" id="job-stage" style="margin-top:6px"></div></div>
  <div class="panel mono" id="job-error" hidden></div>
  <p class="msg error" id="job-note" hidden>This job failed: what did you learn? <a id="job-note-link" href="#">Add a
    capture note on its object</a>, so the next person who photographs something like it finds it.</p>
  <h2>Timeline</h2>
  <table class="data" id="timeline"><thead><tr><th>Time</th><th>Event</th><th>Attempt</th><th>What happened</th>
  </tr></thead><tbody></tbody></table>
</div>"""
        return render_page(request, f"Job {job_id}", body, scripts=["/queue/static/job.js"], active="/jobs")
