"""Capture notes on the dashboard and the bus: the notes section of an object's page, the
search page, their JSON API, their photos, and the ``catalog.note*`` endpoints.

The object page asks this module for its notes section (``section_html``): the object's own
notes and the form to add one, and, while the object is still to be photographed or its job
failed or was rejected, the notes of similar past objects (same tags, same customer).
"""

from __future__ import annotations

import re
import time
import urllib.parse
from datetime import UTC, datetime
from typing import Any

import msgspec
from aiohttp import web

from foto3d.libs.bus.micro import Endpoint, serve
from foto3d.libs.web.layout import esc, render_page
from foto3d.proto.api import NoBody
from foto3d.proto.notes import (
    FACETS,
    NOTE,
    NOTE_TAGS,
    NOTES,
    NOTES_RELATED,
    NotePhoto,
    NoteRequest,
    NotesQuery,
    RelatedQuery,
)
from foto3d.proto.objects import ObjectView, Stage
from foto3d.services.catalog import notes
from foto3d.services.catalog.actions import IMAGE_TYPES, ActionError
from foto3d.services.catalog.api import parse_time
from foto3d.services.catalog.note_actions import NOTE_ID_RE
from foto3d.services.catalog.parts import CatalogParts

ASSETS = ["/catalog/static/catalog.js", "/catalog/static/notes.js"]
# Stages where the page puts lessons from similar objects first: before and just after the shoot.
BEFORE_SHOOT = {Stage.REGISTERED.value, Stage.CAPTURED.value}
# Stages where something went wrong: the page asks what was learned.
WENT_WRONG = {Stage.FAILED.value, Stage.REJECTED.value}
RELATED_SHOWN = 10


def split_tags(value: Any) -> list[str]:
    """Tags from a JSON list or from what a person typed (commas or spaces between them)."""
    if isinstance(value, list):
        return [str(v) for v in value]
    return [t for t in re.split(r"[,\s]+", str(value or "")) if t]


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def tag_chips(tags: list[str], shared: list[str] | None = None) -> str:
    return "".join(
        f'<a class="badge tag{" shared" if shared and t in shared else ""}" '
        f'href="/notes?tag={esc(urllib.parse.quote(t))}">{esc(t)}</a>'
        for t in tags
    )


def note_html(n: dict[str, Any], show_object: bool = True) -> str:
    obj = (
        f'<a class="mono" href="/objects/{esc(urllib.parse.quote(n["object_id"]))}">{esc(n["object_id"])}</a>'
        f" · {esc(n['customer'])} · "
        if show_object
        else ""
    )
    photos = "".join(
        f'<a href="{esc(p)}" target="_blank" rel="noopener"><img class="note-photo" src="{esc(p)}" alt="note photo"></a>'
        for p in n["photos"]
    )
    text = esc(n["text"]).replace("\n", "<br>")
    return f"""<li class="note" data-note="{esc(n["note_id"])}"><div class="muted">{obj}{esc(n["actor"] or "?")}
 · {esc(_when(n["ts"]))}</div><div class="tags">{tag_chips(n["tags"], n.get("shared_tags"))}</div>
<div class="note-text">{text}</div>{f'<div class="note-photos">{photos}</div>' if photos else ""}</li>"""


def note_list(items: list[dict[str, Any]], show_object: bool = True, empty: str = "No notes yet.") -> str:
    if not items:
        return f'<p class="muted empty">{esc(empty)}</p>'
    return f'<ul class="notes">{"".join(note_html(n, show_object) for n in items)}</ul>'


def note_form(object_id: str, vocabulary: dict[str, list[str]], prompt: str) -> str:
    datalist = "".join(f'<option value="{esc(f)}:{esc(v)}">' for f in FACETS for v in vocabulary[f])
    return f"""<form class="panel note-form" data-post="/api/objects/{esc(object_id)}/notes">
<h2>Add a note</h2><p class="muted">{esc(prompt)}</p>
<label>What happened, what worked<textarea name="text" rows="3" maxlength="8000"
placeholder="e.g. glossy glaze reflected the softboxes; raised it 10 cm and used cross-polarised light"></textarea></label>
<label>Tags (facet:value, comma separated: {esc(", ".join(FACETS))})<input name="tags" list="note-vocabulary"
placeholder="material:ceramic, finish:glossy, fix:polarising-filter"></label>
<datalist id="note-vocabulary">{datalist}</datalist>
<label class="check"><input type="checkbox" name="new_tags"> Add tag values that are not in the vocabulary yet</label>
<label>Photos (PNG/JPEG/WebP, up to 6, 700 KiB together)<input name="photos" type="file" multiple
accept="image/png,image/jpeg,image/webp"></label>
<button type="submit">Save note</button><p class="msg"></p></form>"""


async def section_html(parts: CatalogParts, o: ObjectView) -> str:
    """The object page's notes: lessons from similar objects, this object's notes, the form."""
    db = parts.store.db
    oid = o.object_id
    own = await notes.search(db, object_id=oid, limit=notes.MAX_LIMIT)
    related = await notes.related(db, oid, o.customer, limit=RELATED_SHOWN)
    tags = await notes.object_tags(db, oid)
    vocab = await notes.vocabulary(db)
    stage = o.stage
    if stage in WENT_WRONG:
        prompt = (
            "This object's job failed or was rejected: what did you learn? A note with its problem "
            "and fix tags helps the next person who photographs something like it."
        )
    else:
        prompt = "Tag what the object is (shape, material, finish, size) so later objects find this."
    known = (
        f'<p class="muted">Known as: {tag_chips(tags)}</p>'
        if tags
        else '<p class="muted">No tags yet: a note with tags lets similar objects find its lessons.</p>'
    )
    lessons = f"""<div class="panel related-notes"><h2>Lessons from similar objects</h2>
<p class="muted">Notes of other objects with the same tags or the same customer ({esc(o.customer)}), best matches first.</p>
{note_list(related, empty="No notes about similar objects yet.")}</div>"""
    mine = f"""<div class="panel object-notes"><h2>Notes on this object</h2>{known}
{note_list(own, show_object=False)}</div>"""
    warn = (
        '<p class="msg error suggest-note">Something went wrong with this object: please add a note '
        "with what you found, so nobody has to find it out again.</p>"
        if stage in WENT_WRONG
        else ""
    )
    form = note_form(oid, vocab, prompt)
    # Before the shoot the lessons come first; later this object's own notes do.
    first, second = (lessons, mine) if stage in BEFORE_SHOOT else (mine, lessons)
    return f"""<section id="notes"><h2>Capture notes</h2>{warn}
<div class="two-col"><div>{first}{second}</div><div>{form}</div></div></section>"""


def _query(q: Any) -> NotesQuery:
    since = q.get("since", "").strip()
    limit = q.get("limit", "").strip()
    try:
        n = int(limit) if limit else 50
    except ValueError:
        raise ActionError(f"limit must be a whole number, got {limit!r}") from None
    return NotesQuery(
        q=q.get("q", "").strip(),
        tags=[t for v in q.getall("tag", []) for t in split_tags(v)],
        customer=q.get("customer", "").strip() or None,
        object_id=q.get("object", "").strip() or None,
        since=parse_time(since, "since") if since else None,
        limit=n,
    )


class NotePages:
    def __init__(self, parts: CatalogParts) -> None:
        self.parts = parts

    def routes(self) -> list[web.AbstractRouteDef]:
        # Checked in the handler, not by a route pattern: a path the pattern refused would be a
        # 404 before the sign-in gate, which answers every unknown visitor with 401 first.
        photo = "/objects/{object_id}/notes/{note_id}/photos/{index}"
        return [
            web.get("/notes", self.search_page),
            web.get("/api/notes", self.search_api),
            web.get("/api/note-tags", self.vocabulary_api),
            web.get("/api/objects/{object_id}/notes", self.object_notes_api),
            web.get("/api/objects/{object_id}/notes/related", self.related_api),
            web.post("/api/objects/{object_id}/notes", self.write_api),
            web.get(photo, self.photo),
        ]

    async def _guarded(self, fn: Any) -> web.Response:
        try:
            return await fn()  # type: ignore[no-any-return]
        except ActionError as exc:
            return web.json_response({"error": str(exc)}, status=exc.status)
        except msgspec.ValidationError as exc:
            return web.json_response({"error": f"bad request: {exc}"}, status=400)

    async def write_api(self, request: web.Request) -> web.Response:
        user = await self.parts.auth.require_api(request)

        async def run() -> web.Response:
            try:
                b = await request.json()
            except ValueError:
                raise ActionError("the request body must be JSON") from None
            if not isinstance(b, dict):
                raise ActionError("the request body must be a JSON object")
            photos = msgspec.convert(b.get("photos", []), list[NotePhoto])
            row = await self.parts.notes.write(
                request.match_info["object_id"],
                str(b.get("text", "")),
                split_tags(b.get("tags", [])),
                photos,
                b.get("new_tags") in (True, "on", "true", "1"),
                user.name,
            )
            return web.json_response(row, status=201)

        return await self._guarded(run)

    async def object_notes_api(self, request: web.Request) -> web.Response:
        async def run() -> web.Response:
            oid = request.match_info["object_id"]
            await self.parts.catalog.obj(oid)
            return web.json_response(
                await notes.search(self.parts.store.db, object_id=oid, limit=notes.MAX_LIMIT)
            )

        return await self._guarded(run)

    async def related_api(self, request: web.Request) -> web.Response:
        async def run() -> web.Response:
            o = await self.parts.catalog.obj(request.match_info["object_id"])
            return web.json_response(await notes.related(self.parts.store.db, o.object_id, o.customer))

        return await self._guarded(run)

    async def search_api(self, request: web.Request) -> web.Response:
        async def run() -> web.Response:
            return web.json_response(await search(self.parts, _query(request.query)))

        return await self._guarded(run)

    async def vocabulary_api(self, request: web.Request) -> web.Response:
        return web.json_response(await notes.vocabulary(self.parts.store.db))

    async def photo(self, request: web.Request) -> web.FileResponse:
        await self.parts.auth.require_page(request)
        note_id, index = request.match_info["note_id"], request.match_info["index"]
        if not re.fullmatch(NOTE_ID_RE, note_id) or not index.isdigit():
            raise web.HTTPNotFound(text="no such photo")
        path = await self.parts.notes.photo_path(note_id, int(index))
        if path is None:
            raise web.HTTPNotFound(text="no such photo")
        return web.FileResponse(path, headers={"Content-Type": IMAGE_TYPES[path.suffix]})

    async def search_page(self, request: web.Request) -> web.Response:
        user = await self.parts.auth.require_page(request)
        q = request.query
        error = ""
        started = time.perf_counter()
        try:
            query = _query(q)
            found = await search(self.parts, query)
        except ActionError as exc:
            query, found = NotesQuery(), []
            error = f'<p class="msg error">{esc(exc)}</p>'
        took_ms = (time.perf_counter() - started) * 1000
        vocab = await notes.vocabulary(self.parts.store.db)
        datalist = "".join(f'<option value="{esc(f)}:{esc(v)}">' for f in FACETS for v in vocab[f])
        customers = await self.parts.store.customer_names()
        cust = "".join(
            f'<option value="{esc(c.slug)}"{" selected" if c.slug == query.customer else ""}>{esc(c.slug)}</option>'
            for c in customers
        )
        body = f"""<p class="muted">Signed in as <b class="user">{esc(user.name)}</b>. Every word must occur
(in the text or the tags; <span class="mono">refl*</span> is a prefix); every tag must be on the note.</p>
{error}<form class="filters" method="get" action="/notes">
<label>Words<input name="q" value="{esc(query.q)}" placeholder="e.g. reflections glaze"></label>
<label>Tags<input name="tag" list="note-vocabulary" value="{
            esc(", ".join(query.tags))
        }" placeholder="material:glass, finish:glossy"></label>
<datalist id="note-vocabulary">{datalist}</datalist>
<label>Customer<select name="customer"><option value="">all customers</option>{cust}</select></label>
<button type="submit">Search</button></form>
<p class="muted result-count">{len(found)} note{"" if len(found) == 1 else "s"}{
            " (the first " + str(query.limit) + ")" if len(found) >= query.limit else ""
        } · {took_ms:.0f} ms</p>
{note_list(found, empty="No notes match.")}"""
        css = '<link rel="stylesheet" href="/catalog/static/catalog.css">'
        return render_page(request, "Capture notes", css + body, scripts=ASSETS)


async def search(parts: CatalogParts, q: NotesQuery) -> list[dict[str, Any]]:
    return await notes.search(
        parts.store.db, q=q.q, tags=q.tags, customer=q.customer, object_id=q.object_id, since=q.since,
        limit=q.limit,
    )  # fmt: skip


def endpoints(parts: CatalogParts) -> list[Endpoint]:
    """The ``catalog.note*`` endpoints (``foto3d objects note`` and ``notes``)."""

    async def note(b: NoteRequest) -> Any:
        return await parts.notes.write(b.object_id, b.text, b.tags, b.photos, b.new_tags, b.actor)

    async def search_(q: NotesQuery) -> Any:
        return await search(parts, q)

    async def related(q: RelatedQuery) -> Any:
        o = await parts.catalog.obj(q.object_id)
        return await notes.related(parts.store.db, o.object_id, o.customer, q.limit)

    async def vocabulary(_: NoBody) -> Any:
        return await notes.vocabulary(parts.store.db)

    return [
        serve(NOTE, note, actor="actor"),
        serve(NOTES, search_),
        serve(NOTES_RELATED, related),
        serve(NOTE_TAGS, vocabulary),
    ]
