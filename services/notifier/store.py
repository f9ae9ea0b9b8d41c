"""The notifier's durable state in sqlite: alerts, the outbox, and what was already processed.

One connection, one writer; multi-statement changes run in one transaction under
a lock, so an alert's state and the mails it produced always commit together.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite
import msgspec

from foto3d.services.notifier.model import (
    SITE_STORY_KINDS,
    STORY_WINDOW,
    AlertInfo,
    Occurrence,
    rank,
    story_key,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    kind TEXT NOT NULL,
    severity TEXT NOT NULL,
    title TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'open',          -- open | resolved
    opened_at REAL NOT NULL,
    last_at REAL NOT NULL,
    resolved_at REAL,
    resolve_reason TEXT,
    count INTEGER NOT NULL DEFAULT 1,            -- occurrences so far
    mailed_count INTEGER NOT NULL DEFAULT 0,     -- occurrences already reported in a mail
    mails INTEGER NOT NULL DEFAULT 0,
    next_mail_at REAL,                           -- a mail is due at this time (NULL = none)
    last_mail_at REAL,
    last_message TEXT,
    info TEXT NOT NULL,                          -- AlertInfo JSON of the first occurrence
    story TEXT,                                  -- root-cause group (model.story_key)
    parent_id TEXT,                              -- the story's root alert (NULL: this is a root)
    muted INTEGER NOT NULL DEFAULT 0             -- absorbed by its root: never mailed on its own
);
CREATE UNIQUE INDEX IF NOT EXISTS alerts_open_fingerprint ON alerts(fingerprint) WHERE state = 'open';
CREATE INDEX IF NOT EXISTS alerts_due ON alerts(next_mail_at) WHERE next_mail_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS alerts_opened ON alerts(opened_at);
CREATE INDEX IF NOT EXISTS alerts_story ON alerts(story) WHERE state = 'open';
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,
    alert_id TEXT NOT NULL,
    channel TEXT NOT NULL,                       -- smtp | file | webhook | bus
    target TEXT NOT NULL,                        -- address, URL or subject
    message_id TEXT NOT NULL UNIQUE,
    subject TEXT NOT NULL,
    payload BLOB NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',       -- pending | sent | rejected
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_error TEXT,
    created_at REAL NOT NULL,
    sent_at REAL
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox(id) WHERE state = 'pending';
CREATE TABLE IF NOT EXISTS processed (
    key TEXT PRIMARY KEY,
    at REAL NOT NULL
);
"""

_info_dec = msgspec.json.Decoder(AlertInfo)


def alert_id_for(fingerprint: str, origin_ts: float) -> str:
    """An alert's id from what opened it, so every notifier instance names it alike.

    Instances read the same streams in the same order, so the occurrence that opens an
    alert (its fingerprint and its own timestamp, not the time it was read) is the same
    at each; mail ids and threads built on the alert id then match too (``ledger.py``).
    """
    return hashlib.sha256(f"{fingerprint}|{origin_ts!r}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class AlertRow:
    id: str
    fingerprint: str
    kind: str
    severity: str
    title: str
    state: str
    opened_at: float
    last_at: float
    resolved_at: float | None
    resolve_reason: str | None
    count: int
    mailed_count: int
    mails: int
    next_mail_at: float | None
    last_mail_at: float | None
    last_message: str | None
    story: str | None
    parent_id: str | None
    muted: int
    info: AlertInfo
    # Titles of the alerts this root absorbed (filled in when its mail is written).
    related: tuple[str, ...] = ()

    @property
    def thread_root(self) -> str:
        """The alert whose mail thread this alert's mails belong to."""
        return self.parent_id or self.id

    def as_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k not in ("info", "related")}
        d["info"] = msgspec.to_builtins(self.info)
        return d


@dataclass(frozen=True)
class OutboxRow:
    id: int
    alert_id: str
    channel: str
    target: str
    message_id: str
    subject: str
    payload: bytes
    state: str
    attempts: int
    next_attempt_at: float
    last_error: str | None
    created_at: float
    sent_at: float | None

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "payload"}


@dataclass(frozen=True)
class NewMail:
    """A message to put in the outbox (one row per channel and target)."""

    channel: str
    target: str
    message_id: str
    subject: str
    payload: bytes


_ALERT_COLS = ", ".join(
    [
        "id",
        "fingerprint",
        "kind",
        "severity",
        "title",
        "state",
        "opened_at",
        "last_at",
        "resolved_at",
        "resolve_reason",
        "count",
        "mailed_count",
        "mails",
        "next_mail_at",
        "last_mail_at",
        "last_message",
        "story",
        "parent_id",
        "muted",
        "info",
    ]
)
_OUTBOX_COLS = (
    "id, alert_id, channel, target, message_id, subject, payload, state, attempts, "
    "next_attempt_at, last_error, created_at, sent_at"
)


def _alert(row: Any) -> AlertRow:
    vals = list(row)
    vals[-1] = _info_dec.decode(vals[-1])
    return AlertRow(*vals)


def _outbox(row: Any) -> OutboxRow:
    return OutboxRow(*row)


class Store:
    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db
        self._lock = asyncio.Lock()
        # Set by the service from its config: the shortest gap between two mails of one alert.
        self.repeat_interval = 3600.0

    @classmethod
    async def open(cls, path: Path) -> Store:
        db = await aiosqlite.connect(path, isolation_level=None)
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA synchronous=NORMAL")
        # Databases from before stories: add the columns (CREATE TABLE IF NOT EXISTS keeps the old shape).
        cur = await db.execute("PRAGMA table_info(alerts)")
        have = {str(r[1]) for r in await cur.fetchall()}
        for col, decl in (("story", "TEXT"), ("parent_id", "TEXT"), ("muted", "INTEGER NOT NULL DEFAULT 0")):
            if have and col not in have:
                await db.execute(f"ALTER TABLE alerts ADD COLUMN {col} {decl}")
        await db.executescript(SCHEMA)
        return cls(db)

    async def close(self) -> None:
        await self.db.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._lock:
            await self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                await self.db.execute("ROLLBACK")
                raise
            await self.db.execute("COMMIT")

    # -- alerts -------------------------------------------------------------------------

    async def record(
        self, occurrences: Iterable[Occurrence], processed_key: str | None, group_wait: float
    ) -> list[AlertRow]:
        """Count occurrences into their open alerts (opening new ones); returns the newly opened.

        ``processed_key`` (a log batch id, a stream sequence) is recorded in the same
        transaction, so a redelivered message is recognised and never counted twice.
        """
        now = time.time()
        opened: list[AlertRow] = []
        async with self.transaction() as db:
            if processed_key is not None:
                cur = await db.execute(
                    "INSERT OR IGNORE INTO processed(key, at) VALUES (?, ?)", (processed_key, now)
                )
                if cur.rowcount == 0:
                    return []
            for occ in occurrences:
                info = occ.info
                cur = await db.execute(
                    "UPDATE alerts SET count = count + ?, last_at = max(last_at, ?), last_message = ?, "
                    "next_mail_at = CASE WHEN muted THEN NULL ELSE coalesce(next_mail_at, "
                    "max(coalesce(last_mail_at, 0) + ?, ?)) END WHERE fingerprint = ? AND state = 'open' "
                    "RETURNING id",
                    (occ.count, info.ts, info.what[:2000], self.repeat_interval, now, occ.fingerprint),
                )
                if await cur.fetchone() is not None:
                    continue
                alert_id = await self._free_alert_id(db, alert_id_for(occ.fingerprint, info.ts))
                story = story_key(info)
                root = await self._story_root(db, story, info.kind, now) if story else None
                parent_id: str | None = None
                muted = 0
                due: float | None = now + group_wait
                if root is not None:
                    if root.mails == 0 and rank(info.kind) > rank(root.kind):
                        # The root cause arrived after its symptom: it takes over the story and its mail.
                        await db.execute(
                            "UPDATE alerts SET parent_id = ?, muted = 1, next_mail_at = NULL "
                            "WHERE id = ? OR parent_id = ?",
                            (alert_id, root.id, root.id),
                        )
                        due = root.next_mail_at if root.next_mail_at is not None else due
                    elif rank(info.kind) > rank(root.kind) or info.kind in SITE_STORY_KINDS:
                        # A later, graver step, or another silence at the same site: its own
                        # mail, in the root's thread.
                        parent_id = root.id
                    else:
                        parent_id, muted, due = root.id, 1, None  # a symptom of the root: inhibited
                await db.execute(
                    f"INSERT INTO alerts({_ALERT_COLS}) VALUES (?, ?, ?, ?, ?, 'open', ?, ?, NULL, NULL, ?, 0, "
                    "0, ?, NULL, ?, ?, ?, ?, ?)",
                    (
                        alert_id,
                        occ.fingerprint,
                        info.kind,
                        info.severity,
                        info.title[:500],
                        now,
                        info.ts,
                        occ.count,
                        due,
                        info.what[:2000],
                        story,
                        parent_id,
                        muted,
                        msgspec.json.encode(info).decode(),
                    ),
                )
                row = await self._get_alert(db, alert_id)
                if row is not None:
                    opened.append(row)
        return opened

    async def _free_alert_id(self, db: aiosqlite.Connection, wanted: str) -> str:
        """The derived id, unless an older alert of the same origin holds it (then a random one)."""
        cur = await db.execute("SELECT 1 FROM alerts WHERE id = ?", (wanted,))
        return wanted if await cur.fetchone() is None else uuid.uuid4().hex[:16]

    async def _story_root(
        self, db: aiosqlite.Connection, story: str, kind: str, now: float
    ) -> AlertRow | None:
        """The open root alert of a story this new alert belongs to, if any.

        A job's story holds while its root is open. A story of log errors alone (a crash and
        the exit status that follows it) only spans ``STORY_WINDOW`` seconds, so unrelated
        errors of a long-running service minutes apart stay separate alerts.
        """
        cur = await db.execute(
            f"SELECT {_ALERT_COLS} FROM alerts WHERE story = ? AND state = 'open' AND parent_id IS NULL "
            "ORDER BY opened_at DESC LIMIT 1",
            (story,),
        )
        row = await cur.fetchone()
        if row is None:
            return None
        root = _alert(row)
        if root.kind == "log_error" and kind == "log_error" and now - root.opened_at > STORY_WINDOW:
            return None
        return root

    async def story_of(self, root_id: str) -> list[AlertRow]:
        """The alerts a root absorbed, oldest first (shown in its mail)."""
        cur = await self.db.execute(
            f"SELECT {_ALERT_COLS} FROM alerts WHERE parent_id = ? ORDER BY opened_at", (root_id,)
        )
        return [_alert(r) for r in await cur.fetchall()]

    async def _get_alert(self, db: aiosqlite.Connection, alert_id: str) -> AlertRow | None:
        cur = await db.execute(f"SELECT {_ALERT_COLS} FROM alerts WHERE id = ?", (alert_id,))
        row = await cur.fetchone()
        return _alert(row) if row else None

    async def get_alert(self, alert_id: str) -> AlertRow | None:
        return await self._get_alert(self.db, alert_id)

    async def open_alert(self, fingerprint: str) -> AlertRow | None:
        cur = await self.db.execute(
            f"SELECT {_ALERT_COLS} FROM alerts WHERE fingerprint = ? AND state = 'open'", (fingerprint,)
        )
        row = await cur.fetchone()
        return _alert(row) if row else None

    async def due_alerts(self, now: float, limit: int = 200) -> list[AlertRow]:
        cur = await self.db.execute(
            f"SELECT {_ALERT_COLS} FROM alerts WHERE next_mail_at IS NOT NULL AND next_mail_at <= ? "
            "ORDER BY next_mail_at LIMIT ?",
            (now, limit),
        )
        return [_alert(r) for r in await cur.fetchall()]

    async def next_due(self) -> float | None:
        cur = await self.db.execute("SELECT min(next_mail_at) FROM alerts WHERE next_mail_at IS NOT NULL")
        row = await cur.fetchone()
        return float(row[0]) if row and row[0] is not None else None

    async def mailed(self, done: list[tuple[AlertRow, int, list[NewMail]]]) -> None:
        """Put alerts' mails in the outbox and note what they reported, in one transaction.

        Each entry is (alert, occurrences reported, its messages). Occurrences that
        arrived while the mail was being written stay unreported and schedule the
        next mail one repeat interval later.
        """
        now = time.time()
        async with self.transaction() as db:
            for alert, reported, mails in done:
                await db.execute(
                    "UPDATE alerts SET mailed_count = ?, mails = mails + 1, last_mail_at = ?, next_mail_at = "
                    "CASE WHEN count > ? AND state = 'open' THEN ? + ? ELSE NULL END WHERE id = ?",
                    (reported, now, reported, now, self.repeat_interval, alert.id),
                )
                await self._enqueue(db, alert.id, mails, now)

    async def resolve(self, alert_id: str, reason: str, mails: list[NewMail]) -> bool:
        """Close an open alert and queue its recovery messages; False if it was not open."""
        now = time.time()
        async with self.transaction() as db:
            cur = await db.execute(
                "UPDATE alerts SET state = 'resolved', resolved_at = ?, resolve_reason = ?, next_mail_at = NULL "
                "WHERE id = ? AND state = 'open'",
                (now, reason, alert_id),
            )
            if cur.rowcount == 0:
                return False
            await self._enqueue(db, alert_id, mails, now)
        return True

    async def quiet_alerts(self, before: float, kinds: tuple[str, ...]) -> list[AlertRow]:
        marks = ",".join("?" for _ in kinds)
        cur = await self.db.execute(
            f"SELECT {_ALERT_COLS} FROM alerts WHERE state = 'open' AND next_mail_at IS NULL "
            f"AND last_at < ? AND kind IN ({marks})",
            (before, *kinds),
        )
        return [_alert(r) for r in await cur.fetchall()]

    async def open_alerts(self, kind: str | None = None) -> list[AlertRow]:
        q = f"SELECT {_ALERT_COLS} FROM alerts WHERE state = 'open'"
        args: tuple[Any, ...] = ()
        if kind:
            q += " AND kind = ?"
            args = (kind,)
        cur = await self.db.execute(q + " ORDER BY opened_at DESC", args)
        return [_alert(r) for r in await cur.fetchall()]

    async def recent_alerts(self, limit: int = 50) -> list[AlertRow]:
        cur = await self.db.execute(
            f"SELECT {_ALERT_COLS} FROM alerts WHERE state = 'resolved' ORDER BY resolved_at DESC LIMIT ?",
            (limit,),
        )
        return [_alert(r) for r in await cur.fetchall()]

    # -- outbox -------------------------------------------------------------------------

    async def add_messages(self, alert_id: str, mails: list[NewMail]) -> None:
        async with self.transaction() as db:
            await self._enqueue(db, alert_id, mails, time.time())

    async def _enqueue(
        self, db: aiosqlite.Connection, alert_id: str, mails: list[NewMail], now: float
    ) -> None:
        await db.executemany(
            f"INSERT OR IGNORE INTO outbox({_OUTBOX_COLS}) VALUES (NULL, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, "
            "NULL, ?, NULL)",
            [(alert_id, m.channel, m.target, m.message_id, m.subject, m.payload, now, now) for m in mails],
        )

    async def pending(self, limit: int = 500) -> list[OutboxRow]:
        """Pending rows in order, without their payload (read it with :meth:`payload`)."""
        cols = _OUTBOX_COLS.replace("payload", "x''")
        cur = await self.db.execute(
            f"SELECT {cols} FROM outbox WHERE state = 'pending' ORDER BY id LIMIT ?", (limit,)
        )
        return [_outbox(r) for r in await cur.fetchall()]

    async def payloads(self, row_ids: list[int]) -> dict[int, bytes]:
        if not row_ids:
            return {}
        marks = ",".join("?" for _ in row_ids)
        cur = await self.db.execute(f"SELECT id, payload FROM outbox WHERE id IN ({marks})", row_ids)
        return {int(i): bytes(p) for i, p in await cur.fetchall()}

    async def mark_sent(self, row_id: int) -> None:
        async with self._lock:
            await self.db.execute(
                "UPDATE outbox SET state = 'sent', sent_at = ?, attempts = attempts + 1, last_error = NULL "
                "WHERE id = ?",
                (time.time(), row_id),
            )

    async def mark_failed(self, row_id: int, error: str, retry_at: float | None) -> None:
        """Record a failed attempt; ``retry_at=None`` means the receiver refused it for good."""
        async with self._lock:
            if retry_at is None:
                await self.db.execute(
                    "UPDATE outbox SET state = 'rejected', attempts = attempts + 1, last_error = ? WHERE id = ?",
                    (error[:1000], row_id),
                )
            else:
                await self.db.execute(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ? WHERE id = ?",
                    (error[:1000], retry_at, row_id),
                )

    async def postpone(self, row_id: int, until: float, why: str) -> None:
        async with self._lock:
            await self.db.execute(
                "UPDATE outbox SET next_attempt_at = ?, last_error = ? WHERE id = ?", (until, why, row_id)
            )

    async def sent_since(self, channel: str, since: float) -> list[tuple[str, float]]:
        cur = await self.db.execute(
            "SELECT target, sent_at FROM outbox WHERE channel = ? AND state = 'sent' AND sent_at >= ?",
            (channel, since),
        )
        return [(str(t), float(s)) for t, s in await cur.fetchall()]

    async def recent_outbox(self, limit: int = 50) -> list[OutboxRow]:
        cur = await self.db.execute(
            f"SELECT {_OUTBOX_COLS} FROM outbox WHERE channel != 'bus' ORDER BY id DESC LIMIT ?", (limit,)
        )
        return [_outbox(r) for r in await cur.fetchall()]

    async def outbox_row(self, row_id: int) -> OutboxRow | None:
        cur = await self.db.execute(f"SELECT {_OUTBOX_COLS} FROM outbox WHERE id = ?", (row_id,))
        row = await cur.fetchone()
        return _outbox(row) if row else None

    async def outbox_counts(self) -> dict[str, int]:
        cur = await self.db.execute(
            "SELECT state, count(*) FROM outbox WHERE channel != 'bus' GROUP BY state"
        )
        return {str(s): int(n) for s, n in await cur.fetchall()}

    async def forget_processed(self, before: float) -> None:
        async with self._lock:
            await self.db.execute("DELETE FROM processed WHERE at < ?", (before,))
