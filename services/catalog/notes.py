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
    id INTEGER PRIMARY KEY,
    note_id TEXT NOT NULL UNIQUE,
    object_id TEXT NOT NULL,
    ts REAL NOT NULL,
    actor TEXT NOT NULL,
    text TEXT NOT NULL,
    tags TEXT NOT NULL,  -- space-separated, for display and the text index
    photos TEXT NOT NULL  -- JSON list of the catalog's photo paths
);
CREATE INDEX IF NOT EXISTS notes_object ON notes(object_id, ts);
CREATE INDEX IF NOT EXISTS notes_ts ON notes(ts);
CREATE TABLE IF NOT EXISTS note_tags (
    tag TEXT NOT NULL, note_id TEXT NOT NULL, PRIMARY KEY (tag, note_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS note_tags_note ON note_tags(note_id);
CREATE VIRTUAL TABLE IF NOT EXISTS notes_fts USING fts5 (text, tags, content='notes', content_rowid='id');
CREATE TRIGGER IF NOT EXISTS notes_fts_insert AFTER INSERT ON notes BEGIN
    INSERT INTO notes_fts (rowid, text, tags) VALUES (new.id, new.text, new.tags);
END;
"""

# Row changes of an object.note/1 event (see ``projection``); a note is never edited, a
# correction is a new note, so both are plain inserts that a replay leaves unchanged.
OPS: dict[str, str] = {
    "note": "INSERT OR IGNORE INTO notes(note_id, object_id, ts, actor, text, tags, photos)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)",
    "note_tag": "INSERT OR IGNORE INTO note_tags(tag, note_id) VALUES (?, ?)",
}

COLUMNS = (
    "n.note_id, n.object_id, n.ts, n.actor, n.text, n.tags, n.photos,"
    " coalesce(o.customer, '') AS customer, coalesce(o.display_name, n.object_id) AS display_name"
)
MAX_LIMIT = 500


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
    """Notes with every word of ``q`` and every tag, best text matches first (else newest first)."""
    where: list[str] = []
    params: list[Any] = []
    match = match_expression(q)
    tag_set = sorted(set(tags))
    if tag_set:
        marks = ",".join("?" * len(tag_set))
        where.append(
            f"n.note_id IN (SELECT note_id FROM note_tags WHERE tag IN ({marks})"
            " GROUP BY note_id HAVING count(*) = ?)"
        )
        params += [*tag_set, len(tag_set)]
    if customer:
        where.append("o.customer = ?")
        params.append(customer)
    if object_id:
        where.append("n.object_id = ?")
        params.append(object_id)
    if since is not None:
        where.append("n.ts >= ?")
        params.append(since)
    limit = max(1, min(limit, MAX_LIMIT))
    if match is not None:
        # bm25 over the text and the tags (a word in the tags counts as much as in the text).
        sql = (
            f"SELECT {COLUMNS} FROM notes_fts f JOIN notes n ON n.id = f.rowid"
            " LEFT JOIN objects o ON o.object_id = n.object_id WHERE notes_fts MATCH ?"
            + "".join(" AND " + w for w in where)
            + " ORDER BY f.rank, n.ts DESC LIMIT ?"
        )
        rows = await _all(db, sql, (match, *params, limit))
    else:
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        sql = (
            f"SELECT {COLUMNS} FROM notes n LEFT JOIN objects o ON o.object_id = n.object_id{clause}"
            " ORDER BY n.ts DESC LIMIT ?"
        )
        rows = await _all(db, sql, (*params, limit))
    return [_row(r) for r in rows]


async def object_tags(db: aiosqlite.Connection, object_id: str) -> list[str]:
    """Every tag on any of the object's notes: what the object is known to be."""
    rows = await _all(
        db,
        "SELECT DISTINCT t.tag FROM note_tags t JOIN notes n ON n.note_id = t.note_id"
        " WHERE n.object_id = ? ORDER BY t.tag",
        (object_id,),
    )
    return [r[0] for r in rows]


async def related(
    db: aiosqlite.Connection, object_id: str, customer: str, limit: int = 20
) -> list[dict[str, Any]]:
    """Notes of other objects that share this object's tags or its customer, best matches first.

    A shared tag counts twice what the same customer counts: a glossy vase of another
    customer teaches more about this glossy vase than the same customer's wooden chair.
    Ties go to the newest note."""
    mine = await object_tags(db, object_id)
    marks = ",".join("?" * len(mine)) or "NULL"
    sql = f"""
WITH shared AS (
    SELECT note_id, count(*) AS k FROM note_tags WHERE tag IN ({marks}) GROUP BY note_id
)
SELECT {COLUMNS}, coalesce(s.k, 0) AS shared, (o.customer = ?) AS same_customer
FROM notes n JOIN objects o ON o.object_id = n.object_id LEFT JOIN shared s ON s.note_id = n.note_id
WHERE n.object_id != ? AND (s.k IS NOT NULL OR o.customer = ?)
ORDER BY 2 * coalesce(s.k, 0) + (o.customer = ?) DESC, n.ts DESC
LIMIT ?"""
    rows = await _all(
        db, sql, (*mine, customer, object_id, customer, customer, max(1, min(limit, MAX_LIMIT)))
    )
    out = []
    for r in rows:
        d = _row(r, set(mine))
        d["same_customer"] = bool(d["same_customer"])
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


async def count(db: aiosqlite.Connection, object_id: str) -> int:
    rows = await _all(db, "SELECT count(*) FROM notes WHERE object_id = ?", (object_id,))
    return int(rows[0][0])


async def get(db: aiosqlite.Connection, note_id: str) -> dict[str, Any] | None:
    rows = await _all(
        db,
        f"SELECT {COLUMNS} FROM notes n LEFT JOIN objects o ON o.object_id = n.object_id WHERE n.note_id = ?",
        (note_id,),
    )
    return _row(rows[0]) if rows else None
