"""Staff pages: the objects table, an object's page, and the pipeline board.

Rendered on the server (one round trip, no build step); the small ``catalog.js`` only
sends the action forms to the JSON API and reloads. Every page needs a signed-in person.
"""

from __future__ import annotations

import time
import urllib.parse
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from aiohttp import web

from foto3d.libs.auth import User
from foto3d.libs.tracing.job import trace_id_of
from foto3d.libs.web.layout import esc, render_page
from foto3d.proto.gateway import STAFF_MODEL_PAGE
from foto3d.proto.jobs import Artifact
from foto3d.proto.objects import LiveStatus, ObjectSummary, ObjectView, Stage, TimelineEntry
from foto3d.proto.rules import CUSTOMER_PART, MAX_CUSTOMER
from foto3d.services.catalog import note_pages, review, review_files
from foto3d.services.catalog.actions import IMAGE_TYPES, RESUBMITTABLE, REVIEWABLE, ActionError
from foto3d.services.catalog.api import query_filters
from foto3d.services.catalog.parts import CatalogParts
from foto3d.services.catalog.viewer_settings import saved_versions

STATIC = Path(__file__).parent / "static"
ASSETS = ["/catalog/static/catalog.js", "/catalog/static/notes.js"]
STAGE_LABELS = {
    "registered": "Registered",
    "captured": "Captured",
    "submitted": "Submitted",
    "training": "Training",
    "failed": "Failed",
    "in_review": "In review",
    "approved": "Approved",
    "rejected": "Rejected",
    "published": "Published",
    "disabled": "Disabled",
}


def fmt_time(ts: float | None) -> str:
    if not ts:
        return ""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def fmt_age(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def stage_badge(stage: str) -> str:
    return f'<span class="badge stage-{esc(stage)}">{esc(STAGE_LABELS.get(stage, stage))}</span>'


def status_badge(status: str | None) -> str:
    if not status:
        return '<span class="muted">—</span>'
    return f'<span class="badge {esc(status)}">{esc(status)}</span>'


def _live_link(o: ObjectSummary) -> str:
    """Where staff see the live model: the token gateway's dashboard page (customers get it
    through the gateway too; ``live_url``, the published viewer.json, is not served directly)."""
    return STAFF_MODEL_PAGE.format(object_id=urllib.parse.quote(o.object_id))


def _artifact_link(object_id: str, job_id: str, a: Artifact) -> str:
    """A trained splat as a download (the staff-only review route serves local and S3 splats);
    else its name, with where it is stored in the tooltip: never a file:/// address as text."""
    uri = a.uri
    name = PurePosixPath(urllib.parse.urlparse(uri).path).name or uri
    if review_files.can_review(a):
        href = "/review/{}/{}/files/{}".format(
            *(urllib.parse.quote(x, safe="") for x in (object_id, job_id, review_files.url_name(a)))
        )
        return f'<a href="{esc(href)}" download="{esc(name)}">{esc(name)}</a>'
    return f'<span title="{esc(uri)}">{esc(name)}</span>'


def _options(values: list[tuple[str, str]], selected: str) -> str:
    return "".join(
        f'<option value="{esc(v)}"{" selected" if v == selected else ""}>{esc(label)}</option>'
        for v, label in values
    )


def _who(user: User) -> str:
    return (
        f'<div class="toolbar signed-in"><span class="muted">Signed in as <b class="user">{esc(user.name)}</b></span>'
        '<form method="post" action="/logout"><button class="secondary" type="submit">Sign out</button></form></div>'
    )


def _page(request: web.Request, title: str, user: User, body: str) -> web.Response:
    css = '<link rel="stylesheet" href="/catalog/static/catalog.css">'
    return render_page(request, title, css + _who(user) + body, scripts=ASSETS)


#: Stages in which the page offers "mark captured" (again: a new dataset before training).
CAPTURABLE = {Stage.REGISTERED.value, Stage.CAPTURED.value}


def _capture_form(oid: str, o: ObjectView) -> str:
    again = o.stage == Stage.CAPTURED.value
    return f"""<form class="panel action capture" data-post="/api/objects/{esc(oid)}/capture">
<h2>{"Captured: change the dataset" if again else "Mark captured"}</h2>
<p class="muted">Where the photos are, as the trainers see it (a rig uploading through
<span class="mono">foto3d rig</span> records this by itself).</p>
<label>Dataset (folder or s3://bucket/prefix)<input name="dataset" required maxlength="2000" value="{esc(o.dataset or "")}" placeholder="/data/captures/{esc(oid)}"></label>
<label>Photos<input name="photos" type="number" min="0" step="1" placeholder="e.g. 120"></label>
<label>Rig<input name="rig" maxlength="200" placeholder="e.g. turntable-1"></label>
<button type="submit" class="{"secondary" if again else ""}">Mark captured</button><p class="msg"></p></form>"""


def _approval(timeline: list[TimelineEntry], approved_job_id: str | None) -> TimelineEntry | None:
    """The latest review, when it approved the approved job: who, when, the comment."""
    reviews = [e for e in timeline if e.kind in ("approved", "rejected")]
    last = max(reviews, key=lambda e: e.ts, default=None)
    if last is None or last.kind != "approved" or not approved_job_id or last.job_id != approved_job_id:
        return None
    return last


def _approved_panel(oid: str, job_id: str, approval: TimelineEntry) -> str:
    """The checklist once approved: what was confirmed, by whom and when; rejecting stays possible."""
    summary = approval.summary
    comment = summary.split(": ", 1)[1] if ": " in summary else ""
    items = "".join(
        f'<li><input type="checkbox" checked disabled aria-label="{esc(label)}"> {esc(label)}</li>'
        for label in (
            "Training quality is good",
            "Position and alignment are right",
            "Manual adjustments are done",
        )
    )
    return f"""<div class="panel approved-review"><h2>Review job <span class="mono">{esc(job_id)}</span></h2>
<p class="approved-by">Approved by <b>{esc(approval.actor)}</b>
at {esc(fmt_time(approval.ts))}</p>
<ul class="checklist">{items}</ul>{f'<p class="muted">{esc(comment)}</p>' if comment else ""}
<details><summary>Reject after all</summary>
<form class="action review" data-post="/api/objects/{esc(oid)}/review" data-kind="review">
<label>Reason<textarea name="comment" rows="2" required></textarea></label>
<button type="submit" name="decision" value="rejected" class="danger">Reject: back to training</button>
<p class="msg"></p></form></details></div>"""


class CatalogPages:
    """The staff pages: the objects table, an object's page, the pipeline board."""

    def __init__(self, parts: CatalogParts) -> None:
        self.parts = parts

    def routes(self) -> list[web.AbstractRouteDef]:
        return [
            web.get("/objects", self.objects_page),
            web.get("/objects/", self.objects_redirect),
            web.get("/objects/{object_id}", self.object_page),
            web.get("/objects/{object_id}/reference", self.reference),
            web.get("/board", self.board_page),
            web.static("/catalog/static", STATIC),
        ]

    async def objects_page(self, request: web.Request) -> web.Response:
        user = await self.parts.auth.require_page(request)
        q = request.query
        try:
            filters = query_filters(q)
        except ActionError as exc:
            filters = {"page": 1, "limit": 50}
            error = f'<p class="msg error">{esc(exc)}</p>'
        else:
            error = ""
        page = await self.parts.store.search(**filters)
        customers = await self.parts.store.customer_names()
        cust_opts = _options(
            [("", "all customers")] + [(c.slug, c.slug) for c in customers], q.get("customer", "")
        )
        stage_opts = _options(
            [("", "any stage")] + [(s.value, STAGE_LABELS[s.value]) for s in Stage], q.get("stage", "")
        )
        status_opts = _options(
            [("", "any status")] + [(s.value, s.value) for s in LiveStatus] + [("none", "not live")],
            q.get("status", ""),
        )
        rows = []
        for o in page.items:
            live = (
                f'<a href="{esc(_live_link(o))}" target="_blank" rel="noopener">v{esc(o.published_version)}</a>'
                if o.live_url
                else ""
            )
            flag = (
                ""
                if o.registered
                else ' <span class="badge failed" title="job events for an id the catalog never registered">unregistered</span>'
            )
            rows.append(
                f'<tr><td class="mono"><a href="/objects/{esc(o.object_id)}">{esc(o.object_id)}</a>{flag}</td>'
                f"<td>{esc(o.display_name)}</td><td>{esc(o.customer)}</td>"
                f"<td>{stage_badge(o.stage)}</td><td>{status_badge(o.status)}</td>"
                f'<td class="muted">{esc(fmt_time(o.created))}</td><td>{live}</td></tr>'
            )
        table = (
            '<table class="data objects"><thead><tr><th>Object</th><th>Name</th><th>Customer</th><th>Stage</th>'
            f"<th>Status</th><th>Registered</th><th>Live</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
            if rows
            else '<div class="panel empty">No objects match these filters.</div>'
        )
        params = {k: v for k, v in q.items() if k not in ("page", "added") and v}
        pages = max(1, -(-page.total // page.limit))
        nav = []
        if page.page > 1:
            nav.append(f'<a href="?{urllib.parse.urlencode({**params, "page": page.page - 1})}">← newer</a>')
        if page.page < pages:
            nav.append(f'<a href="?{urllib.parse.urlencode({**params, "page": page.page + 1})}">older →</a>')
        csv_link = "/api/objects.csv" + (("?" + urllib.parse.urlencode(params)) if params else "")
        added = next((c for c in customers if c.slug == q.get("added")), None)
        if added is not None:  # back from "Add customer": say it worked, where the form is
            error += (
                f'<p class="msg ok" role="status">Added customer {esc(added.slug)} ({esc(added.name)}).</p>'
            )
        # Before the first customer the register form cannot work: say so instead of an empty list.
        no_customers = (
            "" if customers else '<p class="hint">No customers yet: add one with "Add a customer" first.</p>'
        )
        off = "" if customers else " disabled"
        body = f"""{error}
<form class="filters" method="get" action="/objects">
<label>Customer<select name="customer">{cust_opts}</select></label>
<label>Stage<select name="stage">{stage_opts}</select></label>
<label>Status<select name="status">{status_opts}</select></label>
<label>Search<input name="q" value="{esc(q.get("q", ""))}" placeholder="id or name"></label>
<label>Since<input name="since" type="date" value="{esc(q.get("since", ""))}"></label>
<label>Until<input name="until" type="date" value="{esc(q.get("until", ""))}"></label>
<button type="submit">Filter</button><a class="export" href="{esc(csv_link)}">Export CSV</a></form>
<p class="muted">{page.total:,} object{"" if page.total == 1 else "s"} · page {page.page} of {pages} {" · ".join(nav)}</p>
{table}
<div class="two-col">
<form class="panel action" data-post="/api/objects" data-go="object">
<h2>Register an object</h2>
{no_customers}<label>Customer<select name="customer" required{off}>{_options([(c.slug, c.slug + " — " + c.name) for c in customers], "")}</select></label>
<label>Display name<input name="display_name" required maxlength="200" placeholder="Desk lamp"></label>
<label>Reference image (PNG/JPEG/WebP, up to 768 KiB)<input name="reference_file" type="file" accept="image/png,image/jpeg,image/webp"></label>
<label>… or its URL<input name="reference_image" placeholder="optional"></label>
<button type="submit"{off}>Register</button><p class="msg"></p></form>
<form class="panel action add-customer" data-post="/api/customers" data-go="customer">
<h2>Add a customer</h2>
<label>Customer id<input name="slug" required pattern="{CUSTOMER_PART}" maxlength="{MAX_CUSTOMER}" placeholder="acme"></label>
<label>Name<input name="name" placeholder="ACME Furniture Ltd"></label>
<button type="submit" class="secondary">Add customer</button><p class="msg"></p></form>
</div>"""
        return _page(request, "Objects", user, body)

    async def object_page(self, request: web.Request) -> web.Response:
        user = await self.parts.auth.require_page(request)
        oid = request.match_info["object_id"]
        try:
            o = await self.parts.details(oid)
        except ActionError as exc:
            raise web.HTTPNotFound(text=str(exc)) from None
        timeline = await self.parts.store.timeline(oid)
        pubs = o.publications
        latest_pub = pubs[0] if pubs else None
        job = await self.parts.catalog.latest_trained_job(oid)
        cards = f"""<div class="cards">
<div class="card"><div class="label">Customer</div><div class="value">{esc(o.customer)}</div></div>
<div class="card"><div class="label">Stage</div><div class="value">{stage_badge(o.stage)}</div>
<div class="muted">{esc(fmt_age(time.time() - o.stage_ts))} in this stage</div></div>
<div class="card"><div class="label">Status</div><div class="value">{status_badge(o.status)}</div></div>
<div class="card"><div class="label">Live link</div><div class="value live">{
            f'<a class="live-link" href="{esc(_live_link(o))}" target="_blank" rel="noopener">v{esc(o.published_version)} live model</a>'
            if o.live_url
            else '<span class="muted">not published</span>'
        }</div></div></div>"""
        # preview: the published thumbnail, else the reference image
        preview = ""
        if latest_pub:
            thumb = next((f for f in latest_pub.files if f.kind == "thumbnail"), None)
            if thumb:
                preview = f'<img class="preview" src="{esc(thumb.url)}" alt="thumbnail of {esc(oid)}">'
        if not preview and o.reference_image:
            preview = f'<img class="preview" src="{esc(o.reference_image)}" alt="reference image">'
        preview = preview or '<div class="empty">No preview yet (published models get a thumbnail).</div>'

        actions = []
        if o.stage in CAPTURABLE:
            actions.append(_capture_form(oid, o))
        if o.stage == Stage.CAPTURED.value:
            actions.append(f"""<form class="panel action submit" data-post="/api/objects/{esc(oid)}/submit" data-busy="Submitting…">
<h2>Submit for training</h2><p class="muted">Queues the dataset <span class="mono">{esc(o.dataset or "")}</span>
with the default training options (the CLI's <span class="mono">foto3d submit</span> sets others).</p>
<button type="submit" class="submit-btn">Submit for training</button><p class="msg"></p></form>""")
        approval = _approval(timeline, o.approved_job_id)
        if o.stage in REVIEWABLE and job and approval and approval.job_id == job.job_id:
            actions.append(_approved_panel(oid, job.job_id, approval))
        elif o.stage in REVIEWABLE and job:
            actions.append(f"""<form class="panel action review" data-post="/api/objects/{esc(oid)}/review" data-kind="review">
<h2>Review job <span class="mono">{esc(job.job_id)}</span></h2>
<label class="check"><input type="checkbox" name="training_quality"> Training quality is good</label>
<label class="check"><input type="checkbox" name="alignment"> Position and alignment are right</label>
<label class="check"><input type="checkbox" name="manual_adjustments"> Manual adjustments are done</label>
<label>Comment<textarea name="comment" rows="2" placeholder="required when rejecting"></textarea></label>
<button type="submit" name="decision" value="approved">Approve</button>
<button type="submit" name="decision" value="rejected" class="danger">Reject: back to training</button>
<p class="msg"></p></form>""")
        if o.approved_job_id and o.status != "disabled":
            label = (
                "Publish again"
                if latest_pub and latest_pub.job_id == o.approved_job_id
                else "Send to production"
            )
            actions.append(f"""<form class="panel action publish" data-post="/api/objects/{esc(oid)}/publish" data-busy="Publishing… uploading files">
<h2>Publish</h2><p class="muted">Uploads the approved job's splat files, viewer config and thumbnail.</p>
<button type="submit" class="publish-btn">{esc(label)}</button><p class="msg"></p></form>""")
        if o.stage in RESUBMITTABLE:
            actions.append(f"""<form class="panel action" data-post="/api/objects/{esc(oid)}/resubmit">
<h2>Back to training</h2><p class="muted">Submits the dataset {esc(o.dataset or "(none recorded)")} again.</p>
<button type="submit" class="secondary">Resubmit</button><p class="msg"></p></form>""")
        # A status is about a published model: offered once there is one (or a status was set).
        if o.published_version is not None or o.status:
            status_opts = _options([(s.value, s.value) for s in LiveStatus], o.status or "")
            actions.append(f"""<form class="panel action" data-post="/api/objects/{esc(oid)}/status">
<h2>Live status</h2><p class="muted">Disabling takes effect at the token gateway at once.</p>
<label>Status<select name="status" required>{status_opts}</select></label>
<label>Reason<input name="reason" placeholder="e.g. subscription ended"></label>
<button type="submit" class="secondary">Set status</button><p class="msg"></p></form>""")

        files = []
        if latest_pub:
            for f in latest_pub.files:
                files.append(
                    f'<tr><td>{esc(f.kind)}</td><td class="mono"><a href="{esc(f.url)}">{esc(f.key)}</a></td>'
                    f'<td>{f.bytes:,}</td><td class="mono" title="{esc(f.sha256)}">{esc(f.sha256[:12])}…</td></tr>'
                )
        elif job:
            for a in job.artifacts:
                files.append(
                    f'<tr><td>{esc(a.kind)} ({esc(a.format)})</td><td class="mono">{_artifact_link(oid, job.job_id, a)}</td>'
                    f'<td>{int(a.bytes):,}</td><td class="mono" title="{esc(a.sha256)}">{esc(a.sha256[:12])}…</td></tr>'
                )
        files_html = (
            '<table class="data files"><thead><tr><th>Kind</th><th>File</th><th>Bytes</th><th>SHA-256</th></tr></thead>'
            f"<tbody>{''.join(files)}</tbody></table>"
            if files
            else '<div class="empty">No files yet.</div>'
        )
        tl = "".join(
            f'<tr class="ev-{esc(e.kind)}"><td class="muted">{esc(fmt_time(e.ts))}</td>'
            f'<td><span class="badge kind-{esc(e.kind)}">{esc(e.kind.replace("_", " "))}</span></td>'
            f"<td>{esc(e.summary)}</td><td>{esc(e.actor)}</td></tr>"
            for e in reversed(timeline)
        )
        # The object's trace (its approved or latest job's): look it up in the tracing backend.
        trace_id = trace_id_of(await self.parts.catalog.trace_of(oid, o.approved_job_id or o.job_id))
        trace_html = f' · trace <span class="mono trace-id">{esc(trace_id)}</span>' if trace_id else ""
        body = f"""<p class="muted"><span class="mono">{esc(oid)}</span> · registered {esc(fmt_time(o.created))}
by {esc(o.created_by or "?")} · <a href="/logs?object={esc(urllib.parse.quote(oid))}">logs</a> ·
<a href="/api/objects/{esc(oid)}">JSON</a>{trace_html}</p>
{cards}
<div class="two-col"><div><div class="actions">{"".join(actions)}</div></div>
<div><div class="panel"><h2>Preview</h2>{preview}</div>
<div class="panel"><h2>Files</h2>{files_html}</div></div></div>
{review.section_html(oid, job, await saved_versions(self.parts.store, oid))}
{await note_pages.section_html(self.parts, o)}
<h2>Timeline</h2>
<table class="data timeline"><thead><tr><th>When</th><th>What</th><th>Details</th><th>Who</th></tr></thead>
<tbody>{tl}</tbody></table>"""
        return _page(request, o.display_name, user, body)

    async def board_page(self, request: web.Request) -> web.Response:
        user = await self.parts.auth.require_page(request)
        b = await self.parts.board()
        cards = "".join(
            f'<a class="card stage-card" href="/objects?stage={esc(s.value)}"><div class="label">{esc(STAGE_LABELS[s.value])}</div>'
            f'<div class="value" data-stage="{esc(s.value)}">{b.counts.get(s.value, 0):,}</div></a>'
            for s in Stage
        )
        rows = "".join(
            f'<tr><td class="mono"><a href="/objects/{esc(s.object_id)}">{esc(s.object_id)}</a></td>'
            f"<td>{esc(s.display_name)}</td><td>{stage_badge(s.stage)}</td>"
            f'<td class="stuck-for">{esc(fmt_age(s.for_s))}</td><td class="muted">since {esc(fmt_time(s.stage_ts))}</td></tr>'
            for s in b.stuck
        )
        limits = ", ".join(
            f"{STAGE_LABELS.get(k, k)} {fmt_age(v)}" for k, v in self.parts.stuck_after_s.items()
        )
        stuck = (
            '<table class="data stuck"><thead><tr><th>Object</th><th>Name</th><th>Stage</th><th>Stuck for</th><th></th></tr></thead>'
            f"<tbody>{rows}</tbody></table>"
            if rows
            else '<div class="panel empty">Nothing is stuck.</div>'
        )
        body = f"""<div class="cards board">{cards}</div>
<h2>Stuck objects</h2><p class="muted">Longer in a stage than: {esc(limits)}.</p>{stuck}"""
        return _page(request, "Pipeline", user, body)

    async def reference(self, request: web.Request) -> web.FileResponse:
        await self.parts.auth.require_page(request)
        path = await self.parts.catalog.reference_path(request.match_info["object_id"])
        if path is None:
            raise web.HTTPNotFound(text="no reference image")
        return web.FileResponse(path, headers={"Content-Type": IMAGE_TYPES[path.suffix]})

    async def objects_redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("/objects")
