"""The catalog's sqlite store: customers, objects, jobs, timeline, publications.

Objects, jobs and publications are a projection of the bus events (see ``projection``);
``ingest`` applies a batch in one transaction, skipping events already recorded, so a
redelivered batch changes nothing. Customers are events too (``customer.added/1`` on the
same stream); serial numbers follow from the registrations.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
import msgspec

from foto3d.proto.objects import (
    Customer,
    JobView,
    ObjectPage,
    ObjectSummary,
    ObjectView,
    PublicationView,
    StuckObject,
    TimelineEntry,
)
from foto3d.services.catalog import notes
from foto3d.services.catalog.projection import AnyEvent, Entry, Op, project

T = TypeVar("T", bound=msgspec.Struct)

SCHEMA = (
    """
PRAGMA journal_mode=WAL;
PRAGMA synchronous=NORMAL;
CREATE TABLE IF NOT EXISTS customers (
    slug TEXT PRIMARY KEY, name TEXT NOT NULL, created REAL NOT NULL, actor TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS serials (
    customer TEXT NOT NULL, slug TEXT NOT NULL, last INTEGER NOT NULL, PRIMARY KEY (customer, slug)
);
CREATE TABLE IF NOT EXISTS objects (
    object_id TEXT PRIMARY KEY,
    customer TEXT NOT NULL,
    slug TEXT NOT NULL DEFAULT '',
    serial INTEGER NOT NULL DEFAULT 0,
    display_name TEXT NOT NULL,
    reference_image TEXT NOT NULL DEFAULT '',
    registered INTEGER NOT NULL DEFAULT 1,
    created REAL NOT NULL,
    created_by TEXT NOT NULL DEFAULT '',
    pipeline_stage TEXT NOT NULL DEFAULT 'registered',
    pipeline_ts REAL NOT NULL DEFAULT 0,
    status TEXT,
    status_ts REAL NOT NULL DEFAULT 0,
    -- A disabled model shows as stage "disabled" whatever its pipeline stage; enabling it
    -- again shows the pipeline stage (computed, so event order cannot leave them out of step).
    stage TEXT GENERATED ALWAYS AS
        (CASE WHEN status = 'disabled' THEN 'disabled' ELSE pipeline_stage END) VIRTUAL,
    stage_ts REAL GENERATED ALWAYS AS
        (CASE WHEN status = 'disabled' THEN status_ts ELSE pipeline_ts END) VIRTUAL,
    dataset TEXT,
    job_id TEXT,
    job_ts REAL NOT NULL DEFAULT 0,
    approved_job_id TEXT,
    review_ts REAL NOT NULL DEFAULT 0,
    published_version INTEGER,
    published_ts REAL NOT NULL DEFAULT 0,
    live_url TEXT
);
CREATE INDEX IF NOT EXISTS objects_customer ON objects(customer, created);
CREATE INDEX IF NOT EXISTS objects_stage ON objects(stage, stage_ts);
CREATE INDEX IF NOT EXISTS objects_stage_created ON objects(stage, created);
CREATE INDEX IF NOT EXISTS objects_customer_status ON objects(customer, status, created);
CREATE INDEX IF NOT EXISTS objects_customer_stage ON objects(customer, stage, created);
CREATE INDEX IF NOT EXISTS objects_status ON objects(status, created);
CREATE INDEX IF NOT EXISTS objects_created ON objects(created);
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    object_id TEXT NOT NULL,
    state TEXT NOT NULL,
    dataset TEXT,
    attempt INTEGER NOT NULL DEFAULT 1,
    artifacts TEXT,
    metrics TEXT,
    ts REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_object ON jobs(object_id, ts);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    object_id TEXT NOT NULL,
    ts REAL NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    summary TEXT NOT NULL,
    detail TEXT NOT NULL,
    job_id TEXT
);
CREATE INDEX IF NOT EXISTS events_object ON events(object_id, ts);
CREATE TABLE IF NOT EXISTS publications (
    object_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    job_id TEXT NOT NULL,
    live_url TEXT NOT NULL,
    files TEXT NOT NULL,
    ts REAL NOT NULL,
    actor TEXT NOT NULL,
    PRIMARY KEY (object_id, version)
);
"""
    + notes.SCHEMA
)

# Applied in this order; each is guarded by timestamps so order inside a batch does not matter.
OPS: dict[str, str] = {
    # The first addition of a customer wins; a later copy of the event changes nothing.
    "customer": "INSERT OR IGNORE INTO customers(slug, name, created, actor) VALUES (?, ?, ?, ?)",
    "ensure": "INSERT INTO objects(object_id, customer, display_name, created, registered)"
    " VALUES (?, ?, ?, ?, 0) ON CONFLICT(object_id) DO UPDATE SET created=min(objects.created, excluded.created)"
    " WHERE excluded.created < objects.created",
    "insert_object": "INSERT INTO objects(object_id, customer, slug, serial, display_name, reference_image,"
    " created, created_by, registered) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1)"
    " ON CONFLICT(object_id) DO UPDATE SET customer=excluded.customer, slug=excluded.slug,"
    " serial=excluded.serial, display_name=excluded.display_name,"
    " reference_image=excluded.reference_image, created=min(objects.created, excluded.created),"
    " created_by=excluded.created_by, registered=1",
    "serial": "INSERT INTO serials(customer, slug, last) VALUES (?, ?, ?)"
    " ON CONFLICT(customer, slug) DO UPDATE SET last=max(serials.last, excluded.last)",
    "job": "INSERT INTO jobs(job_id, object_id, state, dataset, attempt, artifacts, metrics, ts)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(job_id) DO UPDATE SET"
    " state=CASE WHEN excluded.ts >= jobs.ts THEN excluded.state ELSE jobs.state END,"
    " ts=max(jobs.ts, excluded.ts), dataset=coalesce(excluded.dataset, jobs.dataset),"
    " attempt=max(jobs.attempt, excluded.attempt), artifacts=coalesce(excluded.artifacts, jobs.artifacts),"
    " metrics=coalesce(excluded.metrics, jobs.metrics)",
    "latest_job": "UPDATE objects SET job_id=?, dataset=coalesce(?, dataset), job_ts=?"
    " WHERE object_id=? AND job_ts<=?",
    "dataset": "UPDATE objects SET dataset=? WHERE object_id=? AND job_ts<=?",
    "approval": "UPDATE objects SET approved_job_id=?, review_ts=? WHERE object_id=? AND review_ts<=?",
    "status": "UPDATE objects SET status=?, status_ts=? WHERE object_id=? AND status_ts<=?",
    "publication": "INSERT OR IGNORE INTO publications(object_id, version, job_id, live_url, files, ts, actor)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)",
    "published": "UPDATE objects SET published_version=?, live_url=?, published_ts=?,"
    " status=coalesce(status, 'production') WHERE object_id=? AND published_ts<=?",
    "stage": "UPDATE objects SET pipeline_stage=?, pipeline_ts=? WHERE object_id=? AND pipeline_ts<=?",
    **notes.OPS,
}

# Sampled statistics (about 1,000 rows per index): milliseconds even on millions of rows.
ANALYZE = "PRAGMA analysis_limit=1000; ANALYZE;"

# Row changes where only the newest per object counts (they are guarded by time anyway):
# name -> (index of object_id, index of the event time) in the parameters.
LATEST_PER_OBJECT: dict[str, tuple[int, int]] = {
    "stage": (2, 1),
    "latest_job": (3, 2),
    "approval": (2, 1),
    "status": (2, 1),
    "published": (3, 2),
}


def _collapse(
    entries: list[Entry], new_keys: set[str], ops_by_key: dict[str, list[Op]]
) -> dict[str, list[tuple[Any, ...]]]:
    """The batch's row changes grouped per statement, in event order, with the guarded
    per-object updates reduced to the newest one (a batch of 1,000 events often holds many
    events of one object: one UPDATE instead of twenty)."""
    grouped: dict[str, list[tuple[Any, ...]]] = {name: [] for name in OPS}
    latest: dict[str, dict[str, tuple[Any, ...]]] = {name: {} for name in LATEST_PER_OBJECT}
    ensured: dict[str, tuple[Any, ...]] = {}
    for e in entries:
        if e.key not in new_keys:
            continue
        for op in ops_by_key.get(e.key, []):
            if op.name in LATEST_PER_OBJECT:
                oid_i, ts_i = LATEST_PER_OBJECT[op.name]
                oid = op.params[oid_i]
                have = latest[op.name].get(oid)
                if have is None or op.params[ts_i] >= have[ts_i]:
                    latest[op.name][oid] = op.params
            elif op.name == "ensure":  # once per object, with its earliest time
                have = ensured.get(op.params[0])
                if have is None or op.params[3] < have[3]:
                    ensured[op.params[0]] = op.params
            else:
                grouped[op.name].append(op.params)
    grouped["ensure"] = list(ensured.values())
    for name, per_object in latest.items():
        grouped[name] = list(per_object.values())
    return grouped


OBJECT_COLUMNS = (
    "object_id, customer, display_name, reference_image, registered, created, created_by, stage, stage_ts,"
    " status, dataset, job_id, approved_job_id, published_version, live_url"
)
_INSERT_CHUNK = 400
# Columns stored as JSON text, decoded into the reply's types when read.
_JSON_COLUMNS = ("artifacts", "metrics", "files", "detail")


class CatalogStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None
        # One connection, so one writer at a time: two interleaved batches would commit
        # each other's half-applied changes.
        self._write = asyncio.Lock()

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("catalog store is not open")
        return self._db

    async def open(self) -> CatalogStore:
        self._db = await aiosqlite.connect(self.path)
        self._db.row_factory = aiosqlite.Row
        await self._db.executescript(SCHEMA)
        # Without table statistics sqlite may pick the status index for "status=x AND
        # customer=y" and scan tens of thousands of rows; a bounded ANALYZE fixes the plans.
        await self._db.executescript(ANALYZE)
        await self._db.commit()
        return self

    async def optimize(self) -> None:
        """Refresh the planner's statistics (cheap; run now and then after big ingests)."""
        async with self._write:
            await self.db.executescript(ANALYZE)

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    # -- ingest -----------------------------------------------------------------------------

    async def ingest(self, events: Iterable[AnyEvent]) -> int:
        """Record a batch of events once each; returns how many were new."""
        entries: list[Entry] = []
        ops_by_key: dict[str, list[Op]] = {}
        unkeyed: list[Op] = []  # changes of events without a timeline entry (idempotent)
        for ev in events:
            p = project(ev)
            if not p.entries:
                unkeyed += p.ops
            for i, e in enumerate(p.entries):
                entries.append(e)
                # the row changes ride on the event's first entry: new entry -> apply them
                ops_by_key.setdefault(e.key, p.ops if i == 0 else [])
        if not entries and not unkeyed:
            return 0
        async with self._write:
            return await self._ingest(entries, ops_by_key, unkeyed)

    async def _ingest(self, entries: list[Entry], ops_by_key: dict[str, list[Op]], unkeyed: list[Op]) -> int:
        db = self.db
        new_keys: set[str] = set()
        seen: set[str] = set()
        unique = [e for e in entries if not (e.key in seen or seen.add(e.key))]  # type: ignore[func-returns-value]
        try:
            for op in unkeyed:
                await db.execute(OPS[op.name], op.params)
            for start in range(0, len(unique), _INSERT_CHUNK):
                chunk = unique[start : start + _INSERT_CHUNK]
                sql = (
                    "INSERT OR IGNORE INTO events(key, object_id, ts, kind, actor, summary, detail, job_id) VALUES "
                    + ",".join(["(?, ?, ?, ?, ?, ?, ?, ?)"] * len(chunk))
                    + " RETURNING key"
                )
                params: list[Any] = []
                for e in chunk:
                    params += [
                        e.key,
                        e.object_id,
                        e.ts,
                        e.kind,
                        e.actor,
                        e.summary,
                        e.detail.decode(),
                        e.job_id,
                    ]
                async with db.execute(sql, params) as cur:
                    new_keys.update(r[0] for r in await cur.fetchall())
            for name, rows in _collapse(unique, new_keys, ops_by_key).items():
                if rows:
                    await db.executemany(OPS[name], rows)
            await db.commit()
        except BaseException:
            await db.rollback()
            raise
        return len(new_keys)

    # -- customers and serials ----------------------------------------------------------------

    async def customer(self, slug: str) -> Customer | None:
        return await self._view(Customer, "SELECT * FROM customers WHERE slug=?", (slug,))

    async def customer_names(self) -> list[Customer]:
        """Every customer without counting its objects (for pickers)."""
        return await self._views(Customer, "SELECT * FROM customers ORDER BY slug", ())

    async def customers(self) -> list[Customer]:
        return await self._views(
            Customer,
            "SELECT c.*, (SELECT count(*) FROM objects o WHERE o.customer=c.slug) AS objects"
            " FROM customers c ORDER BY slug",
            (),
        )

    async def last_serial(self, customer: str, slug: str) -> int:
        row = await self._one("SELECT last FROM serials WHERE customer=? AND slug=?", (customer, slug))
        return int(row["last"]) if row else 0

    # -- reads ------------------------------------------------------------------------------

    async def get(self, object_id: str) -> ObjectView | None:
        return await self._view(ObjectView, "SELECT * FROM objects WHERE object_id=?", (object_id,))

    async def live_objects(self, customer: str) -> list[str]:
        """The customer's models that are live (published and not disabled): what a
        subscription's end switches off."""
        rows = await self._all(
            "SELECT object_id FROM objects WHERE customer=? AND status IS NOT NULL AND status != 'disabled'"
            " ORDER BY object_id",
            (customer,),
        )
        return [r["object_id"] for r in rows]

    async def search(
        self,
        *,
        customer: str | None = None,
        status: str | None = None,
        stage: str | None = None,
        q: str | None = None,
        since: float | None = None,
        until: float | None = None,
        page: int = 1,
        limit: int = 50,
        count: bool = True,
    ) -> ObjectPage:
        where: list[str] = []
        params: list[Any] = []
        if customer:
            where.append("customer=?")
            params.append(customer)
        if status:
            if status == "none":
                where.append("status IS NULL")
            else:
                where.append("status=?")
                params.append(status)
        if stage:
            where.append("stage=?")
            params.append(stage)
        if q:
            where.append("(object_id LIKE ? ESCAPE '\\' OR display_name LIKE ? ESCAPE '\\')")
            like = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            params += [like, like]
        if since is not None:
            where.append("created>=?")
            params.append(since)
        if until is not None:
            where.append("created<?")
            params.append(until)
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        page = max(1, page)
        limit = max(1, min(limit, 1000))
        items = await self._views(
            ObjectSummary,
            f"SELECT {OBJECT_COLUMNS} FROM objects{clause} ORDER BY created DESC, object_id LIMIT ? OFFSET ?",
            (*params, limit, (page - 1) * limit),
        )
        total = -1
        if count:
            row = await self._one(f"SELECT count(*) AS n FROM objects{clause}", tuple(params))
            total = int(row["n"]) if row else 0
        return ObjectPage(items=items, total=total, page=page, limit=limit)

    async def timeline(self, object_id: str) -> list[TimelineEntry]:
        return await self._views(
            TimelineEntry,
            "SELECT key, ts, kind, actor, summary, detail, job_id FROM events WHERE object_id=?"
            " ORDER BY ts, id",
            (object_id,),
        )

    async def submitted_detail(self, job_id: str) -> Any:
        """The recorded submission event of ``job_id`` (its priority and options), or None."""
        row = await self._one(
            "SELECT detail FROM events WHERE job_id=? AND kind='submitted' ORDER BY ts DESC, id DESC LIMIT 1",
            (job_id,),
        )
        return row["detail"] if row else None

    async def registered_detail(self, object_id: str) -> Any:
        """The recorded registration event of ``object_id``, or None (known from job events only)."""
        row = await self._one(
            "SELECT detail FROM events WHERE object_id=? AND kind='registered' ORDER BY ts, id LIMIT 1",
            (object_id,),
        )
        return row["detail"] if row else None

    async def jobs(self, object_id: str) -> list[JobView]:
        return await self._views(
            JobView, f"SELECT {_JOB_COLUMNS} FROM jobs WHERE object_id=? ORDER BY ts DESC", (object_id,)
        )

    async def job(self, job_id: str) -> JobView | None:
        return await self._view(JobView, f"SELECT {_JOB_COLUMNS} FROM jobs WHERE job_id=?", (job_id,))

    async def publications(self, object_id: str) -> list[PublicationView]:
        return await self._views(
            PublicationView,
            "SELECT * FROM publications WHERE object_id=? ORDER BY version DESC",
            (object_id,),
        )

    async def stage_counts(self) -> dict[str, int]:
        rows = await self._all("SELECT stage, count(*) AS n FROM objects GROUP BY stage", ())
        return {r["stage"]: int(r["n"]) for r in rows}

    async def stuck(self, thresholds: dict[str, float], now: float, limit: int = 100) -> list[StuckObject]:
        """Objects that sat in a stage longer than its threshold, longest first."""
        parts: list[str] = []
        params: list[Any] = []
        for stage, seconds in thresholds.items():
            parts.append("(stage=? AND stage_ts<?)")
            params += [stage, now - seconds]
        if not parts:
            return []
        found = await self._views(
            StuckObject,
            f"SELECT object_id, customer, display_name, stage, stage_ts FROM objects WHERE {' OR '.join(parts)}"
            " ORDER BY stage_ts LIMIT ?",
            (*params, limit),
        )
        return [msgspec.structs.replace(s, for_s=round(now - s.stage_ts, 1)) for s in found]

    async def counts(self) -> dict[str, int]:
        objects = await self._one("SELECT count(*) AS n FROM objects", ())
        events = await self._one("SELECT count(*) AS n FROM events", ())
        return {"objects": int(objects["n"]) if objects else 0, "events": int(events["n"]) if events else 0}

    async def _one(self, sql: str, params: Sequence[Any]) -> dict[str, Any] | None:
        async with self.db.execute(sql, params) as cur:
            row = await cur.fetchone()
        return dict(row) if row else None

    async def _all(self, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        async with self.db.execute(sql, params) as cur:
            return [dict(r) for r in await cur.fetchall()]

    async def _view(self, tp: type[T], sql: str, params: Sequence[Any]) -> T | None:
        row = await self._one(sql, params)
        return _as(tp, row) if row is not None else None

    async def _views(self, tp: type[T], sql: str, params: Sequence[Any]) -> list[T]:
        return [_as(tp, r) for r in await self._all(sql, params)]


# A job's artifacts and metrics are NULL until it succeeds: read as empty.
_JOB_COLUMNS = (
    "job_id, object_id, state, dataset, attempt, coalesce(artifacts, '[]') AS artifacts,"
    " coalesce(metrics, '{}') AS metrics, ts"
)


def _as(tp: type[T], row: dict[str, Any]) -> T:
    """A row as its reply type (JSON columns decoded into their Structs); a row that does not
    fit is a bug in the store, so it raises instead of answering with something else."""
    for col in _JSON_COLUMNS:
        if isinstance(row.get(col), str):
            row[col] = msgspec.json.decode(row[col])
    return msgspec.convert(row, tp)
