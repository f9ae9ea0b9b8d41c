"""Time-ordered log reads: "the newest 100" of a large store, before and after the time index.

One run, one database file:

1. build ``--rows`` records in the schema-1 layout (indexes on ``ts`` alone and on
   ``source_id`` = arrival order within a source), as a store written before this change
   holds them; 5 % of the batches arrive late (a spool replay: written an hour earlier);
2. *before*: the newest 100 by arrival (``ORDER BY id DESC``, what readers did, and the
   wrong answer after a replay) and by the records' own time without the new index;
3. open it with :class:`LogStore` (the migration drops the old indexes and builds the
   time-ordered ones: ``logs_time``, ``logs_source_time``, the job, object and warning
   indexes; its time is printed);
4. *after*: the same questions through ``LogStore.query``, plus the second page.

Each figure is the median of ``--repeat`` runs, in milliseconds. The full-text index is
left empty (it plays no part in these queries and would triple the build time).

Usage: PYTHONPATH=. .venv/bin/python bench/bench_log_order.py [--rows 10000000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from foto3d.proto.logs import LogQuery
from foto3d.services.log_collector.store import TIME_ORDER, LogStore

SOURCES = 20
BATCH = 1000
LATE_EVERY = 20  # one batch in 20 is a replay, written an hour before it arrives

SCHEMA_1 = """
CREATE TABLE logs (
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
CREATE INDEX logs_job ON logs (job_id) WHERE job_id IS NOT NULL;
CREATE INDEX logs_object ON logs (object_id) WHERE object_id IS NOT NULL;
CREATE INDEX logs_source ON logs (source_id);
CREATE INDEX logs_ts ON logs (ts);
CREATE INDEX logs_level_ts ON logs (level, ts) WHERE level >= 30;
CREATE VIRTUAL TABLE logs_fts USING fts5 (message, exc, content='logs', content_rowid='id', columnsize=0);
PRAGMA user_version = 1;
"""

INSERT = (
    "INSERT INTO logs (source_kind, source_id, seq, ts, level, logger, host, job_id, object_id, message) "
    "VALUES (?, ?, ?, ?, ?, 'train', 'host-a', ?, NULL, ?)"
)


def build(path: Path, rows: int) -> None:
    """Schema-1 database with ``rows`` records from SOURCES sources, some batches late."""
    db = sqlite3.connect(path)
    db.execute("PRAGMA page_size = 16384")
    db.execute("PRAGMA journal_mode = OFF")
    db.execute("PRAGMA synchronous = OFF")
    db.execute("PRAGMA cache_size = -262144")
    db.executescript(SCHEMA_1)
    t0 = time.time() - rows / 1000.0  # a thousand records a second, ending now
    seqs = [0] * SOURCES
    for b in range(rows // BATCH):
        src = b % SOURCES
        start = seqs[src]
        seqs[src] += BATCH
        ts = t0 + b * BATCH / 1000.0 - (3600.0 if b % LATE_EVERY == 0 else 0.0)
        level = 40 if b % 97 == 0 else 20
        job = f"job-{b // 50}"
        db.executemany(
            INSERT,
            [
                (
                    "trainer",
                    f"gpu-{src}",
                    start + i,
                    ts + i / 1000.0,
                    level,
                    job,
                    f"step {start + i} loss 0.1",
                )
                for i in range(BATCH)
            ],
        )
        if b % 100 == 99:
            db.commit()
    db.commit()
    db.close()


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


async def amedian_ms(fn: Callable[[], Awaitable[object]], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        await fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def select_all(db: sqlite3.Connection, sql: str) -> list[object]:
    return db.execute(sql).fetchall()


def before(path: Path, repeat: int) -> list[tuple[str, float]]:
    db = sqlite3.connect(path)
    out = []
    for name, sql in [
        ("newest 100 by arrival (id)", "SELECT * FROM logs ORDER BY id DESC LIMIT 101"),
        ("newest 100 by time, schema-1 indexes", f"SELECT * FROM logs ORDER BY {TIME_ORDER} LIMIT 101"),
        (
            "newest 100 errors by arrival (id)",
            "SELECT * FROM logs WHERE level >= 40 ORDER BY id DESC LIMIT 101",
        ),
        (
            "newest 100 errors by time, schema-1 indexes",
            f"SELECT * FROM logs WHERE level >= 40 ORDER BY {TIME_ORDER} LIMIT 101",
        ),
        (
            "newest 100 of one source by time, schema-1 indexes",
            f"SELECT * FROM logs WHERE source_id = 'gpu-3' ORDER BY {TIME_ORDER} LIMIT 101",
        ),
        (
            "newest 100 of one job by time, schema-1 indexes",
            f"SELECT * FROM logs WHERE job_id = 'job-1' ORDER BY {TIME_ORDER} LIMIT 101",
        ),
    ]:
        out.append((name, median_ms(functools.partial(select_all, db, sql), repeat)))
    db.close()
    return out


async def after(path: Path, repeat: int) -> tuple[float, list[tuple[str, float]]]:
    t = time.perf_counter()
    store = await LogStore(path).open()  # the migration builds the time indexes here
    migrate_s = time.perf_counter() - t
    out = []
    try:
        first = await store.query(LogQuery(limit=100))
        for name, q in [
            ("newest 100 by time (LogStore.query)", LogQuery(limit=100)),
            ("newest 100 of one source", LogQuery(source_id="gpu-3", limit=100)),
            ("newest 100 errors", LogQuery(min_level=40, limit=100)),
            ("newest 100 of one job", LogQuery(job_id="job-1", limit=100)),
            ("second page (before = cursor)", LogQuery(limit=100, before=first.next_before)),
        ]:
            out.append((name, await amedian_ms(functools.partial(store.query, q), repeat)))
    finally:
        await store.close()
    return migrate_s, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000, help="records in the store, default 10,000,000")
    ap.add_argument("--repeat", type=int, default=7, help="runs per figure (the median is shown)")
    ap.add_argument(
        "--dir", type=Path, default=None, help="where to build the database (default: a temp dir)"
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = Path(tmp) / "logs.db"
        t = time.perf_counter()
        build(path, args.rows)
        print(
            f"built {args.rows:,} records in {time.perf_counter() - t:.1f} s ({path.stat().st_size / 1e6:.0f} MB)"
        )
        rows = before(path, args.repeat)
        migrate_s, rows_after = asyncio.run(after(path, args.repeat))
        print(f"migration to schema 2 (time indexes): {migrate_s:.1f} s")
        for label, group in (("before", rows), ("after", rows_after)):
            for name, ms in group:
                print(f"{label:<6}  {name:<52} {ms:10.2f} ms")


if __name__ == "__main__":
    main()
