"""The job table: a sqlite projection of the JOB_EVENTS stream.

Every queue instance, leader or standby, applies every job event in stream
order and remembers the last stream sequence it applied, so a standby holds
the full state and can lead at once, and a restart resumes where it stopped.
Applying is idempotent and never moves a job backwards (an older attempt's
late event cannot undo a newer one).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

import aiosqlite
import msgspec

from foto3d.proto.jobs import (
    JobDead,
    JobEvent,
    JobFailed,
    JobProgress,
    JobQueued,
    JobRetried,
    JobStarted,
    JobState,
    JobSucceeded,
    JobSummary,
    Priority,
    TimelineEntry,
    TrainOptions,
)
from foto3d.services.queue.validation import dedupe_key

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    object_id TEXT NOT NULL,
    dataset TEXT NOT NULL,
    priority TEXT NOT NULL,
    options TEXT NOT NULL,
    state TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    first_attempt INTEGER NOT NULL DEFAULT 1,
    max_attempts INTEGER NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    request_id TEXT,
    dedupe_key TEXT,
    started REAL,
    finished REAL,
    trainer TEXT,
    stage TEXT,
    step INTEGER NOT NULL DEFAULT 0,
    total INTEGER NOT NULL DEFAULT 0,
    eta_s REAL,
    error TEXT,
    retry_at REAL,
    traceparent TEXT
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);
CREATE INDEX IF NOT EXISTS jobs_object ON jobs(object_id);
CREATE INDEX IF NOT EXISTS jobs_dedupe ON jobs(dedupe_key);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_request ON jobs(request_id);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs(created);
CREATE TABLE IF NOT EXISTS timeline (
    seq INTEGER PRIMARY KEY,
    job_id TEXT NOT NULL,
    ts REAL NOT NULL,
    type TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS timeline_job ON timeline(job_id, seq);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

TERMINAL = (JobState.SUCCEEDED.value, JobState.DEAD.value, JobState.CANCELLED.value)
ACTIVE = (JobState.QUEUED.value, JobState.RUNNING.value, JobState.SUCCEEDED.value)
_COLUMNS = (
    "job_id, object_id, dataset, priority, options, state, attempt, first_attempt, max_attempts, "
    "created, updated, request_id, started, finished, trainer, stage, step, total, eta_s, error, retry_at, traceparent"
)
_options_dec = msgspec.json.Decoder(TrainOptions)


def _summary(row: Sequence[Any]) -> JobSummary:
    return JobSummary(
        job_id=row[0],
        object_id=row[1],
        dataset=row[2],
        priority=Priority(row[3]),
        options=_options_dec.decode(row[4]),
        state=JobState(row[5]),
        attempt=row[6],
        max_attempts=row[8] + row[7] - 1,
        first_attempt=row[7],
        created=row[9],
        updated=row[10],
        request_id=row[11],
        started=row[12],
        finished=row[13],
        trainer=row[14],
        stage=row[15],
        step=row[16],
        total=row[17],
        eta_s=row[18],
        error=row[19],
        retry_at=row[20],
        traceparent=row[21],
    )


class JobStore:
    """The job table of one queue instance (aiosqlite, WAL)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None
        self.last_seq = 0

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("job store is not open")
        return self._db

    async def open(self) -> None:
        self._db = await aiosqlite.connect(self.path)
        await self._db.execute("PRAGMA journal_mode=WAL")
        await self._db.execute("PRAGMA synchronous=NORMAL")
        await self._db.executescript(SCHEMA)
        async with self._db.execute("PRAGMA table_info(jobs)") as cur:
            columns = {str(r[1]) for r in await cur.fetchall()}
        if "traceparent" not in columns:  # a store made before jobs carried their trace
            await self._db.execute("ALTER TABLE jobs ADD COLUMN traceparent TEXT")
        await self._db.commit()
        async with self._db.execute("SELECT value FROM meta WHERE key='last_seq'") as cur:
            row = await cur.fetchone()
        self.last_seq = int(row[0]) if row else 0

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    # -- applying events -------------------------------------------------------

    async def apply(self, batch: list[tuple[int, JobEvent | None]]) -> list[str]:
        """Apply ``(stream_seq, event)`` in order (None: not a job event); returns changed job ids."""
        changed: list[str] = []
        for seq, ev in batch:
            if seq <= self.last_seq:
                continue
            if ev is not None and await self._apply_one(seq, ev):
                changed.append(ev.job_id)
            self.last_seq = seq
        await self.db.execute(
            "INSERT INTO meta(key, value) VALUES('last_seq', ?) "
            "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            (str(self.last_seq),),
        )
        await self.db.commit()
        return changed

    async def _row(self, job_id: str) -> tuple[str, int] | None:
        async with self.db.execute("SELECT state, attempt FROM jobs WHERE job_id=?", (job_id,)) as cur:
            row = await cur.fetchone()
        return (str(row[0]), int(row[1])) if row else None

    async def _timeline(self, seq: int, ev: JobEvent, text: str) -> None:
        tag = type(ev).__struct_config__.tag
        await self.db.execute(
            "INSERT OR IGNORE INTO timeline(seq, job_id, ts, type, attempt, text) VALUES(?,?,?,?,?,?)",
            (seq, ev.job_id, ev.ts, str(tag).split("/")[0], ev.attempt, text),
        )

    async def _set(self, job_id: str, ts: float, **cols: Any) -> None:
        sets = ", ".join(f"{k}=?" for k in cols)
        await self.db.execute(
            f"UPDATE jobs SET {sets}, updated=? WHERE job_id=?", (*cols.values(), ts, job_id)
        )

    async def _apply_one(self, seq: int, ev: JobEvent) -> bool:
        cur = await self._row(ev.job_id)
        if isinstance(ev, JobQueued):
            if cur is None:
                key = dedupe_key(ev.object_id, ev.dataset, ev.options)
                await self.db.execute(
                    "INSERT INTO jobs(job_id, object_id, dataset, priority, options, state, attempt, "
                    "first_attempt, max_attempts, created, updated, request_id, dedupe_key, traceparent) "
                    "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        ev.job_id,
                        ev.object_id,
                        ev.dataset,
                        ev.priority.value,
                        msgspec.json.encode(ev.options),
                        JobState.QUEUED.value,
                        ev.attempt,
                        ev.attempt,
                        ev.max_attempts or 3,
                        ev.ts,
                        ev.ts,
                        ev.request_id,
                        key,
                        ev.traceparent,
                    ),
                )
                await self._timeline(seq, ev, f"queued ({ev.priority.value}) by {ev.actor or 'unknown'}")
                return True
            state, attempt = cur
            if ev.attempt < attempt or (ev.attempt == attempt and state != JobState.QUEUED.value):
                return False
            if state in TERMINAL and ev.reason != "requeue":
                return False
            extra: dict[str, Any] = {}
            if ev.reason == "requeue":
                extra["first_attempt"] = ev.attempt
                if ev.max_attempts:
                    extra["max_attempts"] = ev.max_attempts
            await self._set(
                ev.job_id,
                ev.ts,
                state=JobState.QUEUED.value,
                attempt=ev.attempt,
                retry_at=None,
                stage=None,
                step=0,
                total=0,
                eta_s=None,
                finished=None,
                **extra,
            )
            await self._timeline(seq, ev, f"attempt {ev.attempt} queued ({ev.reason})")
            return True
        if cur is None:
            return False
        state, attempt = cur
        if isinstance(ev, JobStarted):
            if ev.attempt < attempt or state in TERMINAL:
                return False
            await self._set(
                ev.job_id,
                ev.ts,
                state=JobState.RUNNING.value,
                attempt=ev.attempt,
                trainer=ev.trainer,
                started=ev.ts,
                retry_at=None,
                error=None,
            )
            await self._timeline(seq, ev, f"started on {ev.trainer} ({ev.host})")
            return True
        if isinstance(ev, JobProgress):
            if ev.attempt != attempt or state != JobState.RUNNING.value:
                return False
            await self._set(ev.job_id, ev.ts, stage=ev.stage, step=ev.step, total=ev.total, eta_s=ev.eta_s)
            return False  # progress needs no decision from the leader
        if isinstance(ev, JobSucceeded):
            if ev.attempt != attempt or state in TERMINAL:
                return False
            await self._set(ev.job_id, ev.ts, state=JobState.SUCCEEDED.value, finished=ev.ts, eta_s=None)
            # The stored file names (model.ply), not kind.format, which reads like one and is not.
            files = (
                ", ".join(PurePosixPath(urlparse(a.uri).path).name or a.uri for a in ev.artifacts)
                or "no artifacts"
            )
            await self._timeline(seq, ev, f"succeeded: {files}")
            return True
        if isinstance(ev, JobFailed):
            if ev.attempt != attempt or state in TERMINAL:
                return False
            await self._set(ev.job_id, ev.ts, state=JobState.FAILED.value, error=ev.error, finished=ev.ts)
            where = f" in {ev.step}" if ev.step else ""
            await self._timeline(seq, ev, f"failed{where}: {ev.error}")
            return True
        if isinstance(ev, JobRetried):
            if ev.attempt != attempt or state != JobState.FAILED.value:
                return False
            await self._set(ev.job_id, ev.ts, state=JobState.QUEUED.value, retry_at=ev.retry_at or ev.ts)
            delay = f" in {ev.delay_s:.0f} s" if ev.delay_s else ""
            await self._timeline(seq, ev, f"will retry as attempt {ev.attempt + 1}{delay}: {ev.reason}")
            return True
        if isinstance(ev, JobDead):
            if state in (JobState.SUCCEEDED.value, JobState.CANCELLED.value, JobState.DEAD.value):
                return False
            if ev.attempt < attempt:
                return False
            await self._set(
                ev.job_id, ev.ts, state=JobState.DEAD.value, error=ev.error, finished=ev.ts, retry_at=None
            )
            await self._timeline(seq, ev, f"dead: {ev.error}")
            return True
        # JobCancelled: the last member of the union.
        if state in TERMINAL:
            return False
        await self._set(ev.job_id, ev.ts, state=JobState.CANCELLED.value, finished=ev.ts, retry_at=None)
        why = f": {ev.reason}" if ev.reason else ""
        await self._timeline(seq, ev, f"cancelled by {ev.actor or 'unknown'}{why}")
        return True

    # -- queries ---------------------------------------------------------------

    async def get(self, job_id: str) -> JobSummary | None:
        async with self.db.execute(f"SELECT {_COLUMNS} FROM jobs WHERE job_id=?", (job_id,)) as cur:
            row = await cur.fetchone()
        return _summary(row) if row else None

    async def by_request(self, request_id: str) -> JobSummary | None:
        async with self.db.execute(f"SELECT {_COLUMNS} FROM jobs WHERE request_id=?", (request_id,)) as cur:
            row = await cur.fetchone()
        return _summary(row) if row else None

    async def active_duplicate(self, key: str) -> JobSummary | None:
        """An earlier job for the same training that is queued, running or succeeded."""
        marks = ",".join("?" * len(ACTIVE))
        async with self.db.execute(
            f"SELECT {_COLUMNS} FROM jobs WHERE dedupe_key=? AND state IN ({marks}) "
            "ORDER BY created DESC LIMIT 1",
            (key, *ACTIVE),
        ) as cur:
            row = await cur.fetchone()
        return _summary(row) if row else None

    async def query(
        self, states: Sequence[str] = (), object_id: str | None = None, limit: int = 200
    ) -> list[JobSummary]:
        where, args = [], []
        if states:
            where.append(f"state IN ({','.join('?' * len(states))})")
            args += list(states)
        if object_id:
            where.append("object_id=?")
            args.append(object_id)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        async with self.db.execute(
            f"SELECT {_COLUMNS} FROM jobs {clause} ORDER BY created DESC, job_id LIMIT ?", (*args, limit)
        ) as cur:
            rows = await cur.fetchall()
        return [_summary(r) for r in rows]

    async def counts(self) -> dict[str, int]:
        async with self.db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state") as cur:
            rows = await cur.fetchall()
        return {str(r[0]): int(r[1]) for r in rows}

    async def waiting_by_priority(self) -> dict[str, tuple[int, float]]:
        """Queued jobs per priority and the oldest one's creation time (for /metrics)."""
        async with self.db.execute(
            "SELECT priority, COUNT(*), MIN(created) FROM jobs WHERE state=? GROUP BY priority",
            (JobState.QUEUED.value,),
        ) as cur:
            rows = await cur.fetchall()
        return {str(r[0]): (int(r[1]), float(r[2])) for r in rows}

    async def timeline(self, job_id: str) -> list[TimelineEntry]:
        async with self.db.execute(
            "SELECT ts, type, attempt, text FROM timeline WHERE job_id=? ORDER BY seq", (job_id,)
        ) as cur:
            rows = await cur.fetchall()
        return [TimelineEntry(ts=r[0], type=r[1], attempt=r[2], text=r[3]) for r in rows]

    async def undecided_failures(self) -> list[JobSummary]:
        return await self.query([JobState.FAILED.value], limit=10_000)

    async def due_retries(self, now: float | None = None) -> list[JobSummary]:
        async with self.db.execute(
            f"SELECT {_COLUMNS} FROM jobs WHERE state=? AND retry_at IS NOT NULL AND retry_at<=? "
            "ORDER BY retry_at",
            (JobState.QUEUED.value, now if now is not None else time.time()),
        ) as cur:
            rows = await cur.fetchall()
        return [_summary(r) for r in rows]

    async def next_retry_at(self) -> float | None:
        async with self.db.execute(
            "SELECT MIN(retry_at) FROM jobs WHERE state=? AND retry_at IS NOT NULL", (JobState.QUEUED.value,)
        ) as cur:
            row = await cur.fetchone()
        return float(row[0]) if row and row[0] is not None else None

    async def waiting_for_trainer(self) -> list[JobSummary]:
        """Queued jobs whose WorkItem should be on WORK (not waiting for a retry)."""
        async with self.db.execute(
            f"SELECT {_COLUMNS} FROM jobs WHERE state=? AND retry_at IS NULL ORDER BY created",
            (JobState.QUEUED.value,),
        ) as cur:
            rows = await cur.fetchall()
        return [_summary(r) for r in rows]
