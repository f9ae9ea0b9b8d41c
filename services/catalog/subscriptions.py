"""The catalog's subscription book: what the CRM set, and how far each subscription's end got.

It lives in its own sqlite file beside the catalog's store (the catalog owns customers, so
it owns their subscriptions too). A change is applied only when its ``revision`` is newer
than the stored one: the CRM may resend, and requests may overtake each other, without
anything happening twice or an older state winning. Every request is kept in ``history``
(who, when, what it did), so staff can tell what the CRM said.

Its progress columns make the clock (``subscription_clock``) restart-safe: ``warned_end``
says for which end the "ends soon" mail went out, ``ended_at`` that the end was carried out.
Both are written only after the step they record, and each step is idempotent, so a restart
in between repeats the step and never loses it.

Every instance holds the same book: the leader hands each changed row to ``changed``
(``book_events.py`` publishes it on ``CATALOG_BOOKS``), and every instance folds those
events in with :meth:`SubscriptionBook.fold`, which keeps the newest revision and only moves
progress forward, so replays and reordering are harmless. A request's row is handed on after
it is stored (the CRM resends if that fails); a clock step's before (see ``mark_warned``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from foto3d.libs.sqlitefile import SqliteFile
from foto3d.proto.api import CONFLICT, ServiceError
from foto3d.proto.books import HistoryEntry, SubscriptionRecorded
from foto3d.proto.subscriptions import (
    Outcome,
    Requested,
    SubscriptionSet,
    SubscriptionState,
    SubscriptionView,
)

SCHEMA = """
PRAGMA journal_mode=WAL;
PRAGMA synchronous=NORMAL;
CREATE TABLE IF NOT EXISTS subscriptions (
    subscription_id TEXT PRIMARY KEY,
    customer TEXT NOT NULL,
    object_id TEXT NOT NULL DEFAULT '',
    start REAL NOT NULL,
    end REAL NOT NULL,
    requested TEXT NOT NULL,
    revision INTEGER NOT NULL,
    body TEXT NOT NULL,          -- the request that set this revision (a replay must match it)
    updated REAL NOT NULL,
    updated_by TEXT NOT NULL,
    cancelled_at REAL,           -- a cancellation ends the subscription when it was recorded
    warned_end REAL,             -- the end the "ends soon" mail was sent for
    ended_at REAL                -- when the end was carried out (models disabled, mail sent)
);
CREATE INDEX IF NOT EXISTS subscriptions_customer ON subscriptions(customer);
CREATE INDEX IF NOT EXISTS subscriptions_open ON subscriptions(ended_at, end);
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY,
    subscription_id TEXT NOT NULL,
    ts REAL NOT NULL,
    actor TEXT NOT NULL,
    outcome TEXT NOT NULL,
    revision INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS history_subscription ON history(subscription_id, id);
-- A history entry folded in again (a replayed event) is the same entry.
CREATE UNIQUE INDEX IF NOT EXISTS history_once ON history(subscription_id, ts, actor, outcome, revision);
"""
# Row columns an event carries (``SubscriptionRecorded``, in this order).
COLUMNS = (
    "subscription_id", "customer", "object_id", "start", "end", "requested", "revision", "body",
    "updated", "updated_by", "cancelled_at", "warned_end", "ended_at",
)  # fmt: skip
Changed = Callable[[dict[str, Any], HistoryEntry | None], Awaitable[None]]


def _body(req: SubscriptionSet) -> str:
    """The request's content without who sent it: a replay by another hand is still a replay."""
    return msgspec.json.encode(msgspec.structs.replace(req, actor="")).decode()


def effective_end(row: dict[str, Any]) -> float:
    """When the subscription ends: its end date, or the moment a cancellation was recorded."""
    end = float(row["end"])
    if row["requested"] == Requested.CANCELLED.value and row["cancelled_at"] is not None:
        return min(end, float(row["cancelled_at"]))
    return end


def view(row: dict[str, Any], now: float) -> SubscriptionView:
    if row["ended_at"] is not None:
        state = SubscriptionState.ENDED
    elif now < float(row["start"]):
        state = SubscriptionState.SCHEDULED
    else:
        state = SubscriptionState.ACTIVE
    return SubscriptionView(
        subscription_id=row["subscription_id"],
        customer=row["customer"],
        object_id=row["object_id"],
        start=row["start"],
        end=effective_end(row),
        revision=row["revision"],
        requested=Requested(row["requested"]),
        state=state,
        updated=row["updated"],
        updated_by=row["updated_by"],
        warned=row["warned_end"] is not None and float(row["warned_end"]) == float(row["end"]),
        ended_at=row["ended_at"],
    )


def recorded(row: dict[str, Any], history: HistoryEntry | None = None) -> SubscriptionRecorded:
    return SubscriptionRecorded(**{c: row[c] for c in COLUMNS}, history=history)


class SubscriptionBook(SqliteFile):
    schema = SCHEMA
    what = "subscription book"
    # Told every row this instance changed (the leader publishes it for the other instances).
    changed: Changed | None = None

    async def _changed(self, subscription_id: str, history: HistoryEntry | None = None) -> None:
        row = await self.get(subscription_id)
        if self.changed is not None and row is not None:
            await self.changed(row, history)

    # -- changes ---------------------------------------------------------------------------

    async def apply(self, req: SubscriptionSet, now: float) -> tuple[Outcome, dict[str, Any]]:
        """Record ``req`` if its revision is newer than the stored one; what it did and the row."""
        body = _body(req)
        async with self._write:
            row = await self.get(req.subscription_id)
            if row is not None and row["customer"] != req.customer:
                raise ServiceError(
                    CONFLICT,
                    f"subscription {req.subscription_id!r} belongs to customer {row['customer']!r}, "
                    f"not {req.customer!r}",
                )
            if row is None:
                outcome = Outcome.CREATED
            elif req.revision < row["revision"]:
                outcome = Outcome.STALE
            elif req.revision == row["revision"]:
                if body != row["body"]:
                    raise ServiceError(
                        CONFLICT,
                        f"revision {req.revision} of subscription {req.subscription_id!r} was already "
                        "recorded with other content; send the change with a higher revision",
                    )
                outcome = Outcome.UNCHANGED
            else:
                outcome = Outcome.UPDATED
            try:
                if outcome in (Outcome.CREATED, Outcome.UPDATED):
                    await self._store(req, body, row, now)
                await self.db.execute(
                    "INSERT INTO history(subscription_id, ts, actor, outcome, revision, body)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (req.subscription_id, now, req.actor, outcome.value, req.revision, body),
                )
                await self.db.commit()
            except BaseException:
                await self.db.rollback()
                raise
        # Told on every outcome, an unchanged replay too: a change whose event was lost
        # (the leader died before publishing it) reaches the other instances with the retry.
        await self._changed(
            req.subscription_id,
            HistoryEntry(ts=now, actor=req.actor, outcome=outcome.value, revision=req.revision, body=body),
        )
        stored = await self.get(req.subscription_id)
        assert stored is not None
        return outcome, stored

    async def fold(self, ev: SubscriptionRecorded) -> None:
        """Apply a recorded row (idempotent): a newer revision replaces the row; the same
        revision only moves its progress (warned, ended) forward; an older one changes nothing."""
        async with self._write:
            row = await self.get(ev.subscription_id)
            new = {c: getattr(ev, c) for c in COLUMNS}
            if row is not None and ev.revision < row["revision"]:
                new = row
            elif row is not None and ev.revision == row["revision"]:
                new = dict(row)
                new["warned_end"] = row["warned_end"] if ev.warned_end is None else ev.warned_end
                new["ended_at"] = row["ended_at"] if row["ended_at"] is not None else ev.ended_at
            try:
                if new is not row:
                    await self.db.execute(
                        f"INSERT OR REPLACE INTO subscriptions({', '.join(COLUMNS)})"
                        f" VALUES ({', '.join('?' * len(COLUMNS))})",
                        tuple(new[c] for c in COLUMNS),
                    )
                if ev.history is not None:
                    h = ev.history
                    await self.db.execute(
                        "INSERT OR IGNORE INTO history(subscription_id, ts, actor, outcome, revision, body)"
                        " VALUES (?, ?, ?, ?, ?, ?)",
                        (ev.subscription_id, h.ts, h.actor, h.outcome, h.revision, h.body),
                    )
                await self.db.commit()
            except BaseException:
                await self.db.rollback()
                raise

    async def _store(self, req: SubscriptionSet, body: str, row: dict[str, Any] | None, now: float) -> None:
        cancelled_at: float | None = None
        if req.state == Requested.CANCELLED:
            keep = row is not None and row["requested"] == Requested.CANCELLED.value
            cancelled_at = row["cancelled_at"] if keep and row is not None else now
        ended_at = row["ended_at"] if row is not None else None
        new_end = req.end if cancelled_at is None else min(req.end, cancelled_at)
        if ended_at is not None and new_end > now:
            ended_at = None  # renewed: it runs again and will end (and warn) again
        await self.db.execute(
            "INSERT INTO subscriptions(subscription_id, customer, object_id, start, end, requested, revision,"
            " body, updated, updated_by, cancelled_at, ended_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(subscription_id) DO UPDATE SET object_id=excluded.object_id,"
            " start=excluded.start, end=excluded.end, requested=excluded.requested,"
            " revision=excluded.revision, body=excluded.body, updated=excluded.updated,"
            " updated_by=excluded.updated_by, cancelled_at=excluded.cancelled_at, ended_at=excluded.ended_at",
            (
                req.subscription_id, req.customer, req.object_id, req.start, req.end, req.state.value,
                req.revision, body, now, req.actor, cancelled_at, ended_at,
            ),
        )  # fmt: skip

    # A clock step is told (published) before it is recorded here: if the publish fails, the
    # row stays as it was and the clock carries the step out again (its effects are named by
    # the step, so nothing doubles) until every instance has it. Recorded first, the leader's
    # row would be ahead of the standbys' until the next takeover republished it.

    async def mark_warned(self, subscription_id: str, revision: int, end: float) -> None:
        row = await self.get(subscription_id)
        if row is None or row["revision"] != revision:
            return  # the CRM changed it meanwhile: the clock looks at it again
        if self.changed is not None:
            await self.changed({**row, "warned_end": end}, None)
        async with self._write:
            await self.db.execute(
                "UPDATE subscriptions SET warned_end=? WHERE subscription_id=? AND revision=?",
                (end, subscription_id, revision),
            )
            await self.db.commit()

    async def mark_ended(self, subscription_id: str, revision: int, at: float) -> bool:
        """Record that the end was carried out, unless the CRM changed the subscription meanwhile
        (then the clock looks at it again)."""
        row = await self.get(subscription_id)
        if row is None or row["revision"] != revision or row["ended_at"] is not None:
            return False
        if self.changed is not None:
            await self.changed({**row, "ended_at": at}, None)
        async with self._write:
            # (This instance's own consumer may have folded the published row already.)
            cur = await self.db.execute(
                "UPDATE subscriptions SET ended_at=? WHERE subscription_id=? AND revision=?"
                " AND (ended_at IS NULL OR ended_at=?)",
                (at, subscription_id, revision, at),
            )
            await self.db.commit()
        return cur.rowcount == 1

    # -- reads -------------------------------------------------------------------------------

    async def get(self, subscription_id: str) -> dict[str, Any] | None:
        async with self.db.execute(
            "SELECT * FROM subscriptions WHERE subscription_id=?", (subscription_id,)
        ) as cur:
            row = await cur.fetchone()
        return dict(row) if row is not None else None

    async def rows(self, customer: str = "") -> list[dict[str, Any]]:
        sql = "SELECT * FROM subscriptions"
        params: tuple[Any, ...] = ()
        if customer:
            sql += " WHERE customer=?"
            params = (customer,)
        async with self.db.execute(sql + " ORDER BY customer, end", params) as cur:
            return [dict(r) for r in await cur.fetchall()]

    async def history(self, subscription_id: str) -> list[dict[str, Any]]:
        async with self.db.execute(
            "SELECT ts, actor, outcome, revision, body FROM history WHERE subscription_id=? ORDER BY id",
            (subscription_id,),
        ) as cur:
            return [dict(r) for r in await cur.fetchall()]

    async def open_rows(self) -> list[dict[str, Any]]:
        """Subscriptions whose end has not been carried out (the clock's work list; small)."""
        async with self.db.execute("SELECT * FROM subscriptions WHERE ended_at IS NULL") as cur:
            return [dict(r) for r in await cur.fetchall()]


def due_warning(row: dict[str, Any], now: float, notice_s: float) -> bool:
    """The "ends soon" mail is due: within ``notice_s`` of an end still ahead, not yet sent for it."""
    if row["ended_at"] is not None or row["requested"] != Requested.ACTIVE.value:
        return False
    end = float(row["end"])
    already = row["warned_end"] is not None and float(row["warned_end"]) == end
    return not already and end - notice_s <= now < end


def due_end(row: dict[str, Any], now: float) -> bool:
    return row["ended_at"] is None and effective_end(row) <= now


def covered_by_others(
    rows: list[dict[str, Any]], ending: dict[str, Any], now: float
) -> tuple[bool, set[str]]:
    """What the customer's other running subscriptions still cover while ``ending`` ends:
    (every model, or these models). A renewal under a new contract id must not switch off
    what it pays for."""
    whole, models = False, set()
    for r in rows:
        if r["subscription_id"] == ending["subscription_id"] or r["customer"] != ending["customer"]:
            continue
        if r["ended_at"] is None and float(r["start"]) <= now < effective_end(r):
            if r["object_id"]:
                models.add(r["object_id"])
            else:
                whole = True
    return whole, models


def next_due(rows: list[dict[str, Any]], notice_s: float, now: float) -> float | None:
    """The earliest moment one of ``rows`` needs the clock (a warning or an end), if any."""
    times: list[float] = []
    for row in rows:
        end = effective_end(row)
        times.append(end)
        if row["requested"] == Requested.ACTIVE.value and not due_warning(row, now, notice_s):
            warn_at = end - notice_s
            if warn_at > now:
                times.append(warn_at)
    return min(times) if times else None
