"""Capture notes in the catalog's sqlite store: their tables, and the searches over them.

Notes are a projection of ``object.note/1`` events like the rest of the store: the
``note`` and ``note_tag`` row changes (applied by ``CatalogStore.ingest`` with the others)
fill ``notes`` and ``note_tags``, and a trigger keeps the full-text index (FTS5, as the log
server's) in step. Nothing here writes outside the ingest path, so a catalog rebuilt from
the event stream has the same notes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import aiosqlite
import msgspec

from foto3d.proto.logs import search_words
from foto3d.proto.notes import FACETS, STARTER_VALUES

SCHEMA = """
CREATE TABLE IF NOT EXISTS notes (
    id INTEGER PRIMARY KEY,  -- recording order: newest first is id descending
    note_id TEXT NOT NULL UNIQUE,
    object_id TEXT NOT NULL,
    customer TEXT NOT NULL,  -- the object id's first part (the naming standard)
    ts REAL NOT NULL,
    actor TEXT NOT NULL,
    text TEXT NOT NULL,
    tags TEXT NOT NULL,  -- space-separated, for display and the text index
    photos TEXT NOT NULL  -- JSON list of the catalog's photo paths
);
CREATE INDEX IF NOT EXISTS notes_object ON notes(object_id, id);
CREATE INDEX IF NOT EXISTS notes_customer ON notes(customer, id);
-- One row per tag of a note, with what ranking needs (the note's customer), so a tag search
-- walks one index newest first and "similar objects" is counted from the index alone.
CREATE TABLE IF NOT EXISTS note_tags (
    tag TEXT NOT NULL, id INTEGER NOT NULL, customer TEXT NOT NULL, PRIMARY KEY (tag, id)
) WITHOUT ROWID;
CREATE VIRTUAL TABLE IF NOT EXISTS notes_fts USING fts5 (text, tags, content='notes', content_rowid='id');
CREATE TRIGGER IF NOT EXISTS notes_fts_insert AFTER INSERT ON notes BEGIN
    INSERT INTO notes_fts (rowid, text, tags) VALUES (new.id, new.text, new.tags);
END;
"""

# Row changes of an object.note/1 event (see ``projection``); a note is never edited, a
# correction is a new note, so both are plain inserts that a replay leaves unchanged.
# ``note`` runs before ``note_tag`` (this order), which finds the note's row id.
OPS: dict[str, str] = {
    "note": "INSERT OR IGNORE INTO notes(note_id, object_id, customer, ts, actor, text, tags, photos)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    "note_tag": "INSERT OR IGNORE INTO note_tags(tag, id, customer)"
    " SELECT ?, id, customer FROM notes WHERE note_id = ?",
}

COLUMNS = (
    "n.note_id, n.object_id, n.ts, n.actor, n.text, n.tags, n.photos, n.customer,"
    " coalesce(o.display_name, n.object_id) AS display_name"
)
FROM = "notes n LEFT JOIN objects o ON o.object_id = n.object_id"
MAX_LIMIT = 500
# "Similar objects" looks at this many of the newest notes of each of the object's tags.
RELATED_PER_TAG = 500


def match_expression(text: str) -> str | None:
    """What a person typed as a safe FTS5 query: each word a quoted phrase (``word*`` a prefix),
    all of them required; None when nothing in it is searchable."""
    parts = [
        '"' + core.replace('"', '""') + '"' + ("*" if prefix else "") for core, prefix in search_words(text)
    ]
    return " ".join(parts) if parts else None


def _row(r: aiosqlite.Row, mine: set[str] | None = None) -> dict[str, Any]:
    d = dict(r)
    d["tags"] = d["tags"].split() if d["tags"] else []
    d["photos"] = msgspec.json.decode(d["photos"]) if d["photos"] else []
    if mine is not None:
        d["shared_tags"] = [t for t in d["tags"] if t in mine]
    return d


async def _all(db: aiosqlite.Connection, sql: str, params: Sequence[Any]) -> list[aiosqlite.Row]:
    async with db.execute(sql, params) as cur:
        return list(await cur.fetchall())


async def search(
    db: aiosqlite.Connection,
    *,
    q: str = "",
    tags: Sequence[str] = (),
    customer: str | None = None,
    object_id: str | None = None,
    since: float | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Notes with every word of ``q`` and every tag, newest first (as the log search orders).

    Each shape of query walks one index in recording order and stops at ``limit``: the text
    index (FTS5 answers in rowid order), the first tag's rows, the object's or the customer's
    notes; the other conditions are checked per row."""
    where: list[str] = []
    params: list[Any] = []
    match = match_expression(q)
    tag_list = sorted(set(tags))
    if match is not None and (customer or object_id):
        # A customer's or an object's notes are few: walk them, each checked against the
        # text index's matches (walking the matches instead finds few of them per hundred).
        source, order = "notes n", "n.id"
        # The matches are listed once; "+" keeps sqlite from driving the query by that list
        # (one lookup per match) instead of by the customer's or object's index.
        where.append("+n.id IN (SELECT rowid FROM notes_fts WHERE notes_fts MATCH ?)")
        params.append(match)
    elif match is not None:
        source, order = "notes_fts f JOIN notes n ON n.id = f.rowid", "f.rowid"
        where.append("notes_fts MATCH ?")
        params.append(match)
    elif tag_list:
        source, order = "note_tags t0 JOIN notes n ON n.id = t0.id", "t0.id"
        where.append("t0.tag = ?")
        params.append(tag_list.pop(0))
    else:
        source, order = "notes n", "n.id"
    for tag in tag_list:
        where.append("EXISTS (SELECT 1 FROM note_tags t WHERE t.tag = ? AND t.id = n.id)")
        params.append(tag)
    if customer:
        where.append("n.customer = ?")
        params.append(customer)
    if object_id:
        where.append("n.object_id = ?")
        params.append(object_id)
    if since is not None:
        where.append("n.ts >= ?")
        params.append(since)
    clause = (" WHERE " + " AND ".join(where)) if where else ""
    sql = (
        f"SELECT {COLUMNS} FROM {source} LEFT JOIN objects o ON o.object_id = n.object_id"
        f"{clause} ORDER BY {order} DESC LIMIT ?"
    )
    rows = await _all(db, sql, (*params, max(1, min(limit, MAX_LIMIT))))
    return [_row(r) for r in rows]


async def object_tags(db: aiosqlite.Connection, object_id: str) -> list[str]:
    """Every tag on any of the object's notes: what the object is known to be."""
    rows = await _all(
        db,
        "SELECT DISTINCT t.tag FROM notes n JOIN note_tags t ON t.id = n.id WHERE n.object_id = ? ORDER BY t.tag",
        (object_id,),
    )
    return [r[0] for r in rows]


async def related(
    db: aiosqlite.Connection, object_id: str, customer: str, limit: int = 20
) -> list[dict[str, Any]]:
    """Notes of other objects that share this object's tags or its customer, best matches first.

    A shared tag counts twice what the same customer counts: a glossy vase of another
    customer teaches more about this glossy vase than the same customer's wooden chair.
    Ties go to the newest note. The tag matches are counted from ``note_tags`` alone, among
    the newest ``RELATED_PER_TAG`` notes of each tag; when fewer than ``limit`` notes share a
    tag, the customer's newest notes fill the list."""
    mine = await object_tags(db, object_id)
    limit = max(1, min(limit, MAX_LIMIT))
    ranked: list[tuple[int, int]] = []  # (note row id, shared tags)
    if mine:
        # Each tag's newest notes only: the work is bounded by tags x PER_TAG whatever the
        # catalog's size, and the lessons shown are the recent ones.
        per_tag = " UNION ALL ".join(
            ["SELECT * FROM (SELECT id, customer FROM note_tags WHERE tag = ? ORDER BY id DESC LIMIT ?)"]
            * len(mine)
        )
        sql = f"""
SELECT id, count(*) AS k FROM ({per_tag})
WHERE id NOT IN (SELECT id FROM notes WHERE object_id = ?)
GROUP BY id ORDER BY 2 * count(*) + max(customer = ?) DESC, id DESC LIMIT ?"""
        args = [x for tag in mine for x in (tag, RELATED_PER_TAG)]
        ranked = [(int(r[0]), int(r[1])) for r in await _all(db, sql, (*args, object_id, customer, limit))]
    if len(ranked) < limit:
        have = {i for i, _ in ranked}
        rows = await _all(
            db,
            "SELECT id FROM notes WHERE customer = ? AND object_id != ? ORDER BY id DESC LIMIT ?",
            (customer, object_id, limit),
        )
        ranked += [(int(r[0]), 0) for r in rows if int(r[0]) not in have][: limit - len(ranked)]
    if not ranked:
        return []
    marks = ",".join("?" * len(ranked))
    by_id = {
        int(r["id"]): r
        for r in await _all(
            db, f"SELECT n.id, {COLUMNS} FROM {FROM} WHERE n.id IN ({marks})", [i for i, _ in ranked]
        )
    }
    out = []
    for i, _ in ranked:
        d = _row(by_id[i], set(mine))
        del d["id"]
        d["same_customer"] = d["customer"] == customer
        out.append(d)
    return out


async def vocabulary(db: aiosqlite.Connection) -> dict[str, list[str]]:
    """Per facet, its values: the starter ones and every one used in a recorded note."""
    used = await _all(db, "SELECT DISTINCT tag FROM note_tags", ())
    values: dict[str, set[str]] = {f: set(STARTER_VALUES[f]) for f in FACETS}
    for (tag,) in used:
        facet, _, value = str(tag).partition(":")
        if facet in values:
            values[facet].add(value)
    return {f: sorted(values[f]) for f in FACETS}


async def get(db: aiosqlite.Connection, note_id: str) -> dict[str, Any] | None:
    rows = await _all(
        db,
        f"SELECT {COLUMNS} FROM {FROM} WHERE n.note_id = ?",
        (note_id,),
    )
    return _row(rows[0]) if rows else None
