"""The jobs page, the job detail page and their JSON API (served by every instance)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
from aiohttp import web

from foto3d.libs.web.layout import esc, render_page
from foto3d.proto.api import Api, ServiceError
from foto3d.proto.jobs import CANCEL, REQUEUE, JobActionReply, JobRef, JobsQuery, JobState

if TYPE_CHECKING:
    from foto3d.services.queue.service import QueueService

STATIC = Path(__file__).parent / "static"
_enc = msgspec.json.Encoder()


def _json(obj: object, status: int = 200) -> web.Response:
    return web.Response(body=_enc.encode(obj), status=status, content_type="application/json")


class JobsPages:
    def __init__(self, svc: QueueService) -> None:
        self.svc = svc

    def routes(self) -> list[web.AbstractRouteDef]:
        return [
            web.get("/jobs", self.page),
            web.get("/jobs/{job_id}", self.detail_page),
            web.get("/api/jobs", self.api_list),
            web.get("/api/jobs/{job_id}", self.api_get),
            web.post("/api/jobs/{job_id}/cancel", self.api_cancel),
            web.post("/api/jobs/{job_id}/requeue", self.api_requeue),
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
<form class="filters" id="job-filters">
  <label>State<select name="state"><option value="">all</option>{options}</select></label>
  <label>Object<input name="object" placeholder="acme-chair-001" size="22"></label>
  <span class="toolbar"><span class="live-dot" id="live"></span><span class="muted" id="leader"></span></span>
</form>
<table class="data" id="jobs-table">
  <thead><tr><th>Job</th><th>Object</th><th>State</th><th>Priority</th><th>Attempt</th>
  <th>Progress</th><th>Trainer</th><th>Created</th><th>Note</th></tr></thead>
  <tbody><tr><td colspan="9" class="empty">Loading…</td></tr></tbody>
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
  <h2>Timeline</h2>
  <table class="data" id="timeline"><thead><tr><th>Time</th><th>Event</th><th>Attempt</th><th>What happened</th>
  </tr></thead><tbody></tbody></table>
</div>"""
        return render_page(request, f"Job {job_id}", body, scripts=["/queue/static/job.js"], active="/jobs")

    async def api_list(self, request: web.Request) -> web.Response:
        states = [s for s in request.query.get("state", "").split(",") if s]
        try:
            query = msgspec.convert(
                {
                    "states": states,
                    "object_id": request.query.get("object") or None,
                    "limit": int(request.query.get("limit", "200")),
                },
                JobsQuery,
            )
        except (msgspec.ValidationError, ValueError) as exc:
            return _json({"error": f"bad query: {exc}"}, 400)
        return _json(await self.svc.list_jobs(query))

    async def api_get(self, request: web.Request) -> web.Response:
        try:
            detail = await self.svc.job_detail(JobRef(job_id=request.match_info["job_id"]))
        except ServiceError as exc:
            return _json({"error": exc.description}, 404)
        logs = f"{self.svc.context.base_url.rstrip('/')}/logs?job={request.match_info['job_id']}"
        return _json({**msgspec.to_builtins(detail), "logs_url": logs})

    async def _action(self, request: web.Request, command: Api[JobRef, JobActionReply]) -> web.Response:
        job_id = request.match_info["job_id"]
        ref = JobRef(job_id=job_id, actor="dashboard", reason=f"{command.name} from the jobs page")
        try:
            reply = await self.svc.command(command, ref)
        except ServiceError as exc:
            return _json({"ok": False, "job_id": job_id, "error": exc.description}, 409)
        return _json({"ok": True, **msgspec.to_builtins(reply)})

    async def api_cancel(self, request: web.Request) -> web.Response:
        return await self._action(request, CANCEL)

    async def api_requeue(self, request: web.Request) -> web.Response:
        return await self._action(request, REQUEUE)
