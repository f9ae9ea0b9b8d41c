"""The log store: one sqlite file (WAL) with a full-text index on message and exception.

Why this shape:

* ``UNIQUE(source_kind, source_id, seq)`` + ``INSERT OR IGNORE`` make a redelivered
  batch store nothing twice, so the consumer can ack after commit and simply
  replay on any crash.
* The FTS5 table is external-content (the text lives once, in ``logs``) and is
  filled inside the same transaction as the insert, by one
  ``INSERT INTO logs_fts ... SELECT`` over the new ids: four times faster than
  a per-row trigger (measured: ~130k vs ~32k rows/s). Deletes (pruning only)
  keep the FTS index in sync through a trigger.
* ``id INTEGER PRIMARY KEY AUTOINCREMENT`` gives the arrival order (the live tail's
  "what is new since"), never reused, even after pruning empties the table.
* Readers select and order by the record's own time, ``(ts, source_kind, source_id,
  seq)``, never by arrival: a spool replay or a rig back online delivers old lines
  late, and "the newest lines" must still be the newest written. ``logs_time`` is that
  key as an index, so "the newest N" walks it backwards and stops after N; the same key
  is the paging cursor (``next_before``).
* One writer connection and one read-only connection: WAL lets queries run
  while a batch is being written.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite
import msgspec

from foto3d.proto.logs import (
    MAX_EXC_CHARS,
    MAX_MESSAGE_CHARS,
    LogBatch,
    LogQuery,
    LogQueryReply,
    StoredLog,
    log_cursor,
    parse_log_cursor,
    truncate,
)
from foto3d.services.log_collector.fts import match_expression

SCHEMA = """
CREATE TABLE IF NOT EXISTS logs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    source_kind TEXT    NOT NULL,
    source_id   TEXT    NOT NULL,
    seq         INTEGER NOT NULL,
    ts          REAL    NOT NULL,
    level       INTEGER NOT NULL,
    logger      TEXT    NOT NULL DEFAULT '',
    host        TEXT    NOT NULL DEFAULT '',
    job_id      TEXT,
    object_id   TEXT,
    message     TEXT    NOT NULL,
    exc         TEXT,
    UNIQUE (source_kind, source_id, seq)
);
-- (job_id, ts): a job's newest lines come off the index in time order; sqlite sorts only
-- records with the same ts (by source and seq) and stops after the limit.
-- Schema 1 had (job_id) alone, (object_id) alone: every line of the job sorted per query.
DROP INDEX IF EXISTS logs_job;
DROP INDEX IF EXISTS logs_object;
CREATE INDEX IF NOT EXISTS logs_job_time ON logs (job_id, ts) WHERE job_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS logs_object_time ON logs (object_id, ts) WHERE object_id IS NOT NULL;
-- Time order (the readers' order and cursor): "newest N" walks it backwards, no sort.
-- Schema 1 had (ts) alone and (source_id) = (source_id, id): arrival order.
DROP INDEX IF EXISTS logs_ts;
DROP INDEX IF EXISTS logs_source;
CREATE INDEX IF NOT EXISTS logs_time ON logs (ts, source_kind, source_id, seq);
CREATE INDEX IF NOT EXISTS logs_source_time ON logs (source_id, ts, source_kind, seq);
-- Only warnings and above, in time order: "the newest errors" walks it backwards; nearly
-- free for INFO-heavy ingest. (Schema 1 had (level, ts), which cannot give time order.)
DROP INDEX IF EXISTS logs_level_ts;
CREATE INDEX IF NOT EXISTS logs_warn_time ON logs (ts, source_kind, source_id, seq) WHERE level >= 30;
CREATE VIRTUAL TABLE IF NOT EXISTS logs_fts USING fts5 (
    message, exc, content='logs', content_rowid='id', columnsize=0
);
-- Early development builds indexed new rows by trigger; the insert path does it now.
DROP TRIGGER IF EXISTS logs_fts_insert;
CREATE TRIGGER IF NOT EXISTS logs_fts_delete AFTER DELETE ON logs BEGIN
    INSERT INTO logs_fts (logs_fts, rowid, message, exc)
    VALUES ('delete', old.id, old.message, old.exc);
END;
PRAGMA user_version = 2;
"""

COLUMNS = "id, source_kind, source_id, ts, seq, level, message, logger, host, job_id, object_id, exc"
# Optional text columns travel as '' and become NULL in SQL: binding None costs
# Python's sqlite3 an adapter lookup per value (~0.25 µs each, measured).
INSERT = (
    "INSERT OR IGNORE INTO logs (source_kind, source_id, seq, ts, level, logger, host, job_id, "
    "object_id, message, exc) VALUES (?, ?, ?, ?, ?, ?, ?, NULLIF(?, ''), NULLIF(?, ''), ?, NULLIF(?, ''))"
)
_json = msgspec.json.Encoder()
PAGE_SIZE = 16384
WAL_CHECKPOINT_BYTES = 40 * 1024 * 1024

# Index the rows this transaction added (ids above the last committed one).
INDEX_NEW = "INSERT INTO logs_fts (rowid, message, exc) SELECT id, message, exc FROM logs WHERE id > ?"

# Readers' order: newest first by the record's own time; ties by source, then sequence.
TIME_ORDER = "ts DESC, source_kind DESC, source_id DESC, seq DESC"
# The level from which logs_warn_time holds records.
WARN_INDEX_LEVEL = 30
# What one record adds to a JSON reply besides its own encoding (the comma).
RECORD_SEPARATOR_BYTES = 1
# The reply's own framing: {"records":[...],"next_before":"<cursor>"} with a long source id.
REPLY_OVERHEAD_BYTES = 512

# (kind, id, seq, ts, level, logger, host, job_id, object_id, message, exc); '' = none
Row = tuple[str, str, int, float, int, str, str, str, str, str, str]


@dataclass
class PreparedRows:
    rows: list[Row]
    truncated: int


def rows_from_batches(batches: list[LogBatch]) -> PreparedRows:
    """Flatten batches into insert rows; over-long text is cut with a visible marker.

    The SDK truncates already, but a client that speaks the wire format directly
    may not: a long record is stored cut, never dropped.
    """
    rows: list[Row] = []
    truncated = 0
    append = rows.append
    for b in batches:
        kind, sid, host, job, obj = b.source_kind, b.source_id, b.host, b.job_id, b.object_id
        for r in b.records:
            msg = r.message
            exc = r.exc or ""
            if len(msg) > MAX_MESSAGE_CHARS:
                msg = truncate(msg, MAX_MESSAGE_CHARS)
                truncated += 1
            if len(exc) > MAX_EXC_CHARS:
                exc = truncate(exc, MAX_EXC_CHARS)
                truncated += 1
            append(
                (
                    kind,
                    sid,
                    r.seq,
                    r.ts,
                    r.level,
                    r.logger,
                    r.host or host,
                    (r.job_id if r.job_id is not None else job) or "",
                    (r.object_id if r.object_id is not None else obj) or "",
                    msg,
                    exc,
                )
            )
    return PreparedRows(rows, truncated)


def stored_from_row(row: Row, id_: int) -> StoredLog:
    kind, sid, seq, ts, level, logger, host, job, obj, msg, exc = row
    return StoredLog(
        id=id_,
        source_kind=kind,
        source_id=sid,
        ts=ts,
        seq=seq,
        level=level,
        message=msg,
        logger=logger,
        host=host,
        job_id=job or None,
        object_id=obj or None,
        exc=exc or None,
    )


def _stored(r: Any) -> StoredLog:
    return StoredLog(
        id=r[0],
        source_kind=r[1],
        source_id=r[2],
        ts=r[3],
        seq=r[4],
        level=r[5],
        message=r[6],
        logger=r[7],
        host=r[8],
        job_id=r[9],
        object_id=r[10],
        exc=r[11],
    )


@dataclass
class InsertResult:
    stored: int
    duplicates: int
    # The records that were new, in id order (only built when asked for).
    new: list[StoredLog]


def where_clause(q: LogQuery) -> tuple[str, list[Any]]:
    """SQL conditions for every filter of ``q`` (shared by queries and counts)."""
    cond: list[str] = []
    params: list[Any] = []

    def eq(col: str, value: Any) -> None:
        if value is not None:
            cond.append(f"{col} = ?")
            params.append(value)

    # Few distinct kinds: scanning newest-first beats the unique index plus a sort,
    # so the unary + keeps sqlite from using an index for this column.
    eq("+source_kind", q.source_kind)
    eq("source_id", q.source_id)
    eq("job_id", q.job_id)
    eq("object_id", q.object_id)
    eq("host", q.host)
    if q.min_level is not None:
        # A literal (an int, so safe), not a parameter, and the index's own term beside
        # it: sqlite uses a partial index only when the query repeats its condition.
        cond.append(f"level >= {int(q.min_level)}")
        if q.min_level > WARN_INDEX_LEVEL:
            cond.append(f"level >= {WARN_INDEX_LEVEL}")
    if q.since is not None:
        cond.append("ts >= ?")
        params.append(q.since)
    if q.until is not None:
        cond.append("ts <= ?")
        params.append(q.until)
    if q.around_ts is not None:
        cond.append("ts <= ?")
        params.append(q.around_ts)
    if q.before is not None:
        # Row values: sqlite walks logs_time from the cursor on, like a plain "<".
        cond.append("(ts, source_kind, source_id, seq) < (?, ?, ?, ?)")
        params.extend(parse_log_cursor(q.before))
    if q.text:
        expr = match_expression(q.text)
        if expr is None:
            cond.append("0")  # nothing searchable in the text: nothing matches
        else:
            cond.append("id IN (SELECT rowid FROM logs_fts WHERE logs_fts MATCH ?)")
            params.append(expr)
    return (" WHERE " + " AND ".join(cond)) if cond else "", params


class LogStore:
    """Async access to the log database (aiosqlite runs sqlite in its own threads)."""

    def __init__(self, path: Path, *, synchronous: str = "normal") -> None:
        self.path = path
        self.synchronous = synchronous.upper()
        self._w: aiosqlite.Connection | None = None
        self._r: aiosqlite.Connection | None = None
        self.last_id = 0
        # One aiosqlite connection interleaves calls at every await: without this
        # lock the pruner's DELETE/COMMIT could land inside an insert transaction.
        self._write = asyncio.Lock()

    async def open(self) -> LogStore:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        w = await aiosqlite.connect(self.path)
        # page_size and auto_vacuum only take effect before the first table exists.
        # 16 KiB pages cut the writer's CPU per record by ~10% (measured with
        # bench-style rows); pruned pages go back to the file system via
        # incremental_vacuum.
        await w.execute(f"PRAGMA page_size = {PAGE_SIZE}")
        await w.execute("PRAGMA auto_vacuum = INCREMENTAL")
        await w.execute("PRAGMA journal_mode = WAL")
        await w.execute(f"PRAGMA synchronous = {self.synchronous}")
        # Checkpoint every ~40 MB of WAL instead of every 4 MB: one 64k-record
        # transaction no longer triggers a checkpoint (and its fsyncs) on each commit.
        await w.execute(f"PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_BYTES // PAGE_SIZE}")
        await w.execute(f"PRAGMA journal_size_limit = {2 * WAL_CHECKPOINT_BYTES}")
        await w.execute("PRAGMA temp_store = MEMORY")
        await w.execute("PRAGMA cache_size = -65536")  # 64 MiB
        await w.executescript(SCHEMA)
        await w.commit()
        async with w.execute("SELECT seq FROM sqlite_sequence WHERE name = 'logs'") as cur:
            row = await cur.fetchone()
        self.last_id = int(row[0]) if row else 0
        r = await aiosqlite.connect(f"file:{self.path}?mode=ro", uri=True)
        await r.execute("PRAGMA query_only = 1")
        await r.execute("PRAGMA cache_size = -32768")
        self._w, self._r = w, r
        return self

    async def close(self) -> None:
        for conn in (self._r, self._w):
            if conn is not None:
                await conn.close()
        self._w = self._r = None

    @property
    def writer(self) -> aiosqlite.Connection:
        if self._w is None:
            raise RuntimeError("log store is not open")
        return self._w

    @property
    def reader(self) -> aiosqlite.Connection:
        if self._r is None:
            raise RuntimeError("log store is not open")
        return self._r

    # -- writing ---------------------------------------------------------------

    async def insert(self, rows: list[Row], *, want_new: bool = False) -> InsertResult:
        """Insert ``rows`` in one transaction; rows already stored are ignored."""
        w = self.writer
        async with self._write:
            before = self.last_id
            try:
                cur = await w.executemany(INSERT, rows)
                stored = cur.rowcount if cur.rowcount >= 0 else 0
                await cur.close()
                if stored:
                    await w.execute(INDEX_NEW, (before,))
                await w.commit()
            except BaseException:
                await w.rollback()
                raise
            self.last_id = before + stored
        new: list[StoredLog] = []
        if want_new and stored:
            if stored == len(rows):
                # No duplicates: ids were handed out in row order (single writer).
                new = [stored_from_row(row, before + 1 + i) for i, row in enumerate(rows)]
            else:
                new = await self.read_after(before, stored)
        return InsertResult(stored=stored, duplicates=len(rows) - stored, new=new)

    async def read_after(self, after_id: int, limit: int) -> list[StoredLog]:
        async with self.writer.execute(
            f"SELECT {COLUMNS} FROM logs WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit)
        ) as cur:
            return [_stored(r) for r in await cur.fetchall()]

    # -- reading ---------------------------------------------------------------

    async def query(self, q: LogQuery, *, max_bytes: int | None = None) -> LogQueryReply:
        """Newest first in time order; ``next_before`` pages further back when there is more.

        With ``max_bytes`` the page also ends before the record that would make the
        encoded reply larger (a NATS reply must fit the server's max payload); it
        always holds at least one record, which the store's truncation keeps small.
        ValueError: a ``before`` cursor that cannot be read.
        """
        where, params = where_clause(q)
        sql = f"SELECT {COLUMNS} FROM logs{where} ORDER BY {TIME_ORDER} LIMIT ?"
        async with self.reader.execute(sql, [*params, q.limit + 1]) as cur:
            rows = list(await cur.fetchall())
        records = [_stored(r) for r in rows[: q.limit]]
        more = len(rows) > q.limit
        if max_bytes is not None:
            budget = max_bytes - REPLY_OVERHEAD_BYTES
            for i, r in enumerate(records):
                budget -= len(_json.encode(r)) + RECORD_SEPARATOR_BYTES
                if budget < 0 and i > 0:
                    del records[i:]
                    more = True
                    break
        if q.around_ts is not None:
            more = False  # the lines around a moment: one page by design
        return LogQueryReply(records=records, next_before=log_cursor(records[-1]) if more else None)

    async def count(self, q: LogQuery | None = None) -> int:
        where, params = where_clause(q or LogQuery())
        async with self.reader.execute(f"SELECT count(*) FROM logs{where}", params) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def used_bytes(self) -> int:
        """Bytes of the database's pages in use (free pages excluded)."""
        vals = []
        for pragma in ("page_count", "freelist_count", "page_size"):
            async with self.writer.execute(f"PRAGMA {pragma}") as cur:
                row = await cur.fetchone()
            vals.append(int(row[0]) if row else 0)
        pages, free, size = vals
        return (pages - free) * size

    def file_bytes(self) -> int:
        """Size on disk, database plus write-ahead log."""
        total = 0
        for suffix in ("", "-wal"):
            try:
                total += Path(str(self.path) + suffix).stat().st_size
            except FileNotFoundError:
                pass
        return total

    # -- pruning ---------------------------------------------------------------

    async def delete_older_than(self, cutoff_ts: float, chunk: int) -> int:
        """Delete up to ``chunk`` records older than ``cutoff_ts`` in one short transaction."""
        return await self._delete(
            "DELETE FROM logs WHERE id IN (SELECT id FROM logs WHERE ts < ? ORDER BY ts LIMIT ?)",
            (cutoff_ts, chunk),
        )

    async def delete_oldest(self, chunk: int) -> int:
        """Delete the ``chunk`` oldest records by their own time (size cap).

        By time, not arrival: a replayed backlog is as old as when it was written.
        """
        return await self._delete(
            "DELETE FROM logs WHERE id IN (SELECT id FROM logs ORDER BY ts, source_kind, source_id, seq LIMIT ?)",
            (chunk,),
        )

    async def _delete(self, sql: str, params: tuple[Any, ...]) -> int:
        w = self.writer
        async with self._write:
            try:
                cur = await w.execute(sql, params)
                n = cur.rowcount
                await cur.close()
                await w.commit()
            except BaseException:
                await w.rollback()
                raise
        return max(n, 0)

    async def merge_fts(self, pages: int = 500) -> None:
        """Let the FTS index fold in delete markers a little at a time."""
        w = self.writer
        async with self._write:
            await w.execute("INSERT INTO logs_fts (logs_fts, rank) VALUES ('merge', ?)", (pages,))
            await w.commit()

    async def release_free_pages(self, pages: int = 2000) -> None:
        """Give freed pages back to the file system and checkpoint the WAL."""
        w = self.writer
        async with self._write:
            await w.execute(f"PRAGMA incremental_vacuum({int(pages)})")
            await w.commit()
            await w.execute("PRAGMA wal_checkpoint(PASSIVE)")
