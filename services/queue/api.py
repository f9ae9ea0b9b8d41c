"""The jobs' JSON API for the dashboard: list, detail, cancel, requeue (served by every instance)."""

from __future__ import annotations

import msgspec
from aiohttp import web

from foto3d.libs.auth.gate import signed_in_user
from foto3d.libs.heartbeat import waiting_note
from foto3d.proto.api import Api, ServiceError
from foto3d.proto.jobs import CANCEL, REQUEUE, JobActionReply, JobRef, JobsQuery, JobState
from foto3d.services.queue.parts import QueueParts

_enc = msgspec.json.Encoder()


def _json(obj: object, status: int = 200) -> web.Response:
    return web.Response(body=_enc.encode(obj), status=status, content_type="application/json")


class JobsApi:
    def __init__(self, parts: QueueParts) -> None:
        self.parts = parts

    def routes(self) -> list[web.AbstractRouteDef]:
        return [
            web.get("/api/jobs", self.api_list),
            web.get("/api/queue/waiting", self.api_waiting),
            web.get("/api/jobs/{job_id}", self.api_get),
            web.post("/api/jobs/{job_id}/cancel", self.api_cancel),
            web.post("/api/jobs/{job_id}/requeue", self.api_requeue),
        ]

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
        listed = await self.parts.list_jobs(query)
        # JobsList omits an empty counts map on the wire; the page wants every state, 0 included.
        counts = {state.value: listed.counts.get(state.value, 0) for state in JobState}
        return _json({**msgspec.to_builtins(listed), "counts": counts})

    async def api_waiting(self, _request: web.Request) -> web.Response:
        """Whether queued jobs wait with no trainer alive, and since when (the Jobs page's banner)."""
        queued = await self.parts.list_jobs(JobsQuery(states=[JobState.QUEUED], limit=1000))
        since = min((j.created for j in queued.jobs), default=None)
        note = await waiting_note(self.parts.ctx.bus.js, since) if since is not None else None
        return _json({"queued": len(queued.jobs), "note": note})

    async def api_get(self, request: web.Request) -> web.Response:
        try:
            detail = await self.parts.job_detail(JobRef(job_id=request.match_info["job_id"]))
        except ServiceError as exc:
            return _json({"error": exc.description}, 404)
        logs = f"{self.parts.ctx.base_url.rstrip('/')}/logs?job={request.match_info['job_id']}"
        return _json({**msgspec.to_builtins(detail), "logs_url": logs})

    async def _action(self, request: web.Request, command: Api[JobRef, JobActionReply]) -> web.Response:
        job_id = request.match_info["job_id"]
        # The person, by their staff account name, as every page action records it.
        user = signed_in_user(request)
        actor = user.name if user else "dashboard"
        ref = JobRef(job_id=job_id, actor=actor, reason=f"{command.name} from the jobs page")
        try:
            reply = await self.parts.command(command, ref)
        except ServiceError as exc:
            return _json({"ok": False, "job_id": job_id, "error": exc.description}, 409)
        return _json({"ok": True, **msgspec.to_builtins(reply)})

    async def api_cancel(self, request: web.Request) -> web.Response:
        return await self._action(request, CANCEL)

    async def api_requeue(self, request: web.Request) -> web.Response:
        return await self._action(request, REQUEUE)
