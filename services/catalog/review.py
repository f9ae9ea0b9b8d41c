"""Review in 3D: the trained splat in ``<foto3d-viewer>`` before publishing, and the reviewer's
viewer settings (level, default view, limits), saved as versioned ``object.viewer/1`` events.

The settings live in the object's timeline (who saved what, when); the latest version is what
the next publish sends to the publisher (``PublishRequest.viewer``), which merges it over the
defaults it computes from the splat.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web

from foto3d.libs.viewer import assets
from foto3d.libs.viewer.config import file_up
from foto3d.libs.web.layout import esc
from foto3d.proto.jobs import UNREDUCED_KIND, Artifact
from foto3d.proto.objects import JobView, ObjectViewerSaved
from foto3d.proto.viewer import ViewerSettings
from foto3d.services.catalog import figures as review_figures
from foto3d.services.catalog import review_files
from foto3d.services.catalog.actions import ActionError
from foto3d.services.catalog.parts import CatalogParts
from foto3d.services.catalog.review_files import ReviewFiles, clear_partial
from foto3d.services.catalog.viewer_settings import saved_versions

REVIEW_SCRIPT = "/catalog/static/review.js"
# Formats the viewer reads, smallest per gaussian first: the "delivery" copy shown beside the full one.
DELIVERY_ORDER = ("spz", "sog", "compressed-ply", "splat", "ply")
# Versions are numbered per object: one save at a time (hold it around read-change-record).
SAVE_LOCK = asyncio.Lock()


async def save_settings(
    parts: CatalogParts, object_id: str, raw: object, comment: str, actor: str
) -> dict[str, Any]:
    try:
        settings = msgspec.convert(raw, ViewerSettings)
    except msgspec.ValidationError as exc:
        raise ActionError(f"viewer settings are not valid: {exc}") from None
    if len(comment) > 1000:
        raise ActionError("the comment is longer than 1000 characters")
    async with SAVE_LOCK:
        version = await record_version(parts, object_id, settings, comment, actor)
    return {"object_id": object_id, "version": version, "settings": msgspec.to_builtins(settings)}


async def record_version(
    parts: CatalogParts, object_id: str, settings: ViewerSettings, comment: str, actor: str
) -> int:
    """Record ``settings`` as the object's next ``object.viewer/1`` version (hold :data:`SAVE_LOCK`)."""
    row = await parts.catalog.obj(object_id)
    job = await parts.catalog.latest_trained_job(object_id)
    version = len(await saved_versions(parts.store, object_id)) + 1
    await parts.catalog.record(
        ObjectViewerSaved(
            event_id=f"viewer-{uuid.uuid4().hex}",
            object_id=object_id,
            # after the object's latest change, like every catalog decision
            ts=max(time.time(), row.pipeline_ts + 0.001, row.status_ts + 0.001),
            actor=actor,
            version=version,
            settings=settings,
            job_id=job.job_id if job else "",
            comment=comment.strip(),
        )
    )
    return version


class CatalogReview:
    """The review's routes: saved viewer settings (JSON API) and the trained job's splat files.

    The dashboard's gate requires staff sign-in for all of them; ``/viewer/{file}`` (the bundle)
    is private there too, since only the signed-in review page loads it."""

    def __init__(self, parts: CatalogParts, cache: Path) -> None:
        self.parts = parts
        self.cache = cache
        self._files: ReviewFiles | None = None

    @property
    def files(self) -> ReviewFiles:
        if self._files is None:
            clear_partial(self.cache)
            self._files = ReviewFiles(self.cache)
        return self._files

    def routes(self) -> list[web.AbstractRouteDef]:
        return [
            web.get("/viewer/{file}", assets.handle_bundle),
            web.get("/api/objects/{object_id}/viewer", self.get_settings),
            web.post("/api/objects/{object_id}/viewer", self.post_settings),
            web.get("/review/{object_id}/{job_id}/files/{name}", self.artifact),
        ]

    async def get_settings(self, request: web.Request) -> web.Response:
        await self.parts.auth.require_api(request)
        oid = request.match_info["object_id"]
        try:
            await self.parts.catalog.obj(oid)
        except ActionError as exc:
            return web.json_response({"error": str(exc)}, status=exc.status)
        versions = await saved_versions(self.parts.store, oid)
        return web.json_response(
            {"object_id": oid, "latest": versions[-1] if versions else None, "versions": versions}
        )

    async def post_settings(self, request: web.Request) -> web.Response:
        user = await self.parts.auth.require_api(request)
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": "the request body must be JSON"}, status=400)
        if not isinstance(body, dict) or not isinstance(body.get("settings"), dict):
            return web.json_response({"error": 'send {"settings": {…}, "comment": "…"}'}, status=400)
        try:
            out = await save_settings(
                self.parts,
                request.match_info["object_id"],
                body["settings"],
                str(body.get("comment", "")),
                user.name,
            )
        except ActionError as exc:
            return web.json_response({"error": str(exc)}, status=exc.status)
        return web.json_response(out, status=201)

    async def artifact(self, request: web.Request) -> web.StreamResponse:
        """A trained job's splat file, for the reviewer's viewer (staff only, before publishing)."""
        await self.parts.auth.require_page(request)
        job = await self.parts.store.job(request.match_info["job_id"])
        if job is None or job.object_id != request.match_info["object_id"]:
            raise web.HTTPNotFound(text="no such job for this object")
        art = review_files.find(job, request.match_info["name"])
        if art is None:
            raise web.HTTPNotFound(text="this job has no splat file of that format")
        try:
            path = await self.files.path(art)
        except review_files.StorageError as exc:
            # gone from the store is "not found"; changed or unreachable is the store's fault
            if "missing" in str(exc):
                raise web.HTTPNotFound(text=str(exc)) from None
            raise web.HTTPBadGateway(text=str(exc)) from None
        return web.FileResponse(
            path, headers={"Content-Type": "application/octet-stream", "Cache-Control": "private"}
        )


def _viewer(
    object_id: str, job_id: str, art: Artifact, settings: dict[str, Any], role: str, note: str = ""
) -> str:
    fmt = art.format
    # The file's up axis as the trainer recorded it; older trainers wrote +Z-up data and recorded none.
    config = {**settings, "up": art.up or file_up(fmt)}
    tag = assets.viewer_tag(
        src=f"/review/{object_id}/{job_id}/files/{review_files.url_name(art)}",
        config=json.dumps(config),
        options={"format": fmt, "data-role": role},
    )
    gaussians = f"{art.gaussians:,} gaussians · " if art.gaussians else ""
    label = "full, as trained" if art.kind == UNREDUCED_KIND else role
    return (
        f'<figure class="review-view"><div class="review-canvas">{tag}</div>'
        f"<figcaption><b>{esc(label)}</b> · {esc(fmt)} · {gaussians}{esc(review_figures.fmt_bytes(float(art.bytes)))}"
        f"{esc(note)}</figcaption></figure>"
    )


def _reduction_note(full: Artifact, delivery: Artifact, metrics: dict[str, float]) -> str:
    """`` · 9.4× smaller · 41.2 dB / SSIM 0.991 against the full one`` where the job measured it."""
    parts = []
    if full.bytes and delivery.bytes:
        parts.append(f"{full.bytes / delivery.bytes:.1f}× smaller")
    if full.kind == UNREDUCED_KIND and isinstance(metrics.get("reduced_psnr"), int | float):
        ssim = metrics.get("reduced_ssim")
        parts.append(
            f"{float(metrics['reduced_psnr']):.1f} dB"
            + (f" / SSIM {float(ssim):.3f}" if isinstance(ssim, int | float) else "")
            + " against the full one"
        )
    return "".join(" · " + p for p in parts)


def section_html(object_id: str, job: JobView | None, versions: list[dict[str, Any]]) -> str:
    """The object page's "Review in 3D" panel: the splat as trained beside the reduced copy
    customers will get, with sizes and the reduction's measured quality, and the controls that
    save viewer settings."""
    if job is None:
        return ""
    try:
        b = assets.bundle()
    except assets.ViewerBundleMissing as exc:
        return f'<div class="panel"><h2>Review in 3D</h2><p class="msg error">{esc(str(exc))}</p></div>'
    arts = review_files.reviewable(job)
    if not arts:
        return (
            '<div class="panel"><h2>Review in 3D</h2><p class="muted">This job recorded no splat files '
            "the dashboard can open (local folder or S3).</p></div>"
        )
    settings = versions[-1]["settings"] if versions else {}
    jid = job.job_id
    splats = {a.format: a for a in arts if a.kind == "splat"}
    unreduced = next((a for a in arts if a.kind == UNREDUCED_KIND), None)
    full = unreduced or splats.get("ply") or arts[0]
    delivery = next((splats[f] for f in DELIVERY_ORDER if f in splats), full)
    metrics = job.metrics
    views = _viewer(object_id, jid, full, settings, "full")
    if delivery is not full:
        views += _viewer(
            object_id, jid, delivery, settings, "delivery", _reduction_note(full, delivery, metrics)
        )
    figures = "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in review_figures.rows(metrics))
    history = "".join(
        f"<li>v{esc(str(v['version']))} by {esc(v['actor'])}{': ' + esc(v['comment']) if v['comment'] else ''}</li>"
        for v in reversed(versions)
    )
    s = settings
    rot = s.get("rotation") or [0, 0, 0]
    lim = s.get("limits") or {}
    initial = esc(json.dumps(settings))
    return f"""<div class="panel review3d" data-object="{esc(object_id)}" data-settings="{initial}">
<h2>Review in 3D <span class="muted">job <span class="mono">{esc(jid)}</span></span></h2>
<div class="review-views">{views}</div>
<table class="data figures"><tbody>{figures or '<tr><td class="muted">no figures recorded</td></tr>'}</tbody></table>
<form class="review-adjust">
<h3>Adjust (applies to both views; saved into the viewer config)</h3>
<label>Level X° <input type="range" name="rot_x" min="-180" max="180" step="0.5" value="{rot[0]}"><output></output></label>
<label>Turn Y° <input type="range" name="rot_y" min="-180" max="180" step="0.5" value="{rot[1]}"><output></output></label>
<label>Level Z° <input type="range" name="rot_z" min="-180" max="180" step="0.5" value="{rot[2]}"><output></output></label>
<label>Lowest view° <input type="number" name="min_elevation" min="-89" max="89" value="{esc(str(lim.get("min_elevation", "")))}" placeholder="-20"></label>
<label>Highest view° <input type="number" name="max_elevation" min="-89" max="89" value="{esc(str(lim.get("max_elevation", "")))}" placeholder="60"></label>
<label>Closest zoom × <input type="number" name="min_distance" min="0.1" step="0.05" value="{esc(str(lim.get("min_distance", "")))}" placeholder="0.55"></label>
<label>Farthest zoom × <input type="number" name="max_distance" min="0.1" step="0.05" value="{esc(str(lim.get("max_distance", "")))}" placeholder="2"></label>
<label>Background <input type="text" name="background" value="{esc(str(s.get("background") or ""))}" placeholder="#eef0f3"></label>
<label class="check"><input type="checkbox" name="auto_rotate"{" checked" if s.get("auto_rotate") else ""}> Auto-rotate</label>
<button type="button" class="secondary set-view">Use the full view's current angle as the default</button>
<label>Comment <input type="text" name="comment" maxlength="1000" placeholder="what changed"></label>
<button type="submit" class="save-viewer">Save viewer settings</button>
<p class="msg"></p>
</form>
<p class="muted">Saved versions: {f"<ol reversed>{history}</ol>" if history else "none yet: the published viewer frames the object itself"}</p>
</div>
<style>.review-views{{display:flex;gap:12px;flex-wrap:wrap}}.review-view{{flex:1 1 320px;margin:0}}
.review-canvas{{height:360px}}
.review-adjust{{display:grid;grid-template-columns:repeat(auto-fill,minmax(200px,1fr));gap:10px 16px;align-items:end;
margin-top:12px}}.review-adjust h3,.review-adjust .msg,.review-adjust .set-view{{grid-column:1/-1}}
.review-adjust .set-view{{justify-self:start}}.review-adjust label{{display:flex;flex-direction:column;gap:3px;
font-size:12px;color:var(--muted)}}.review-adjust label.check{{flex-direction:row;align-items:center;gap:8px}}
.review-adjust output{{font-size:12px;color:var(--ink)}}.review-adjust button.save-viewer{{justify-self:start}}</style>
{assets.script_tag("/viewer/" + b.file, b.sri)}
<script src="{REVIEW_SCRIPT}" defer></script>"""
