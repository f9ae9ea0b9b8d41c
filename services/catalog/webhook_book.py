"""Customers' webhook endpoints and the delivery log (the catalog's own sqlite file).

The secret of an endpoint is kept as is: the catalog needs it to sign every delivery (unlike
a credential, which is only ever checked). It is shown once, in the answer that creates it.
The log has one row per delivery (endpoint x event), keyed by the delivery id, so a source
event seen twice never makes a second delivery.

The endpoints are the same on every catalog instance: the leader hands each changed row to
``changed`` (published on ``CATALOG_BOOKS``) and every instance folds it in with
:meth:`WebhookBook.fold` (a removal is never undone by a replay). The delivery log too: the
leader hands each delivery's row to ``delivery_changed`` after it was queued or attempted, and
every instance folds it in with :meth:`WebhookBook.fold_delivery` (more attempts win; a
delivered row stays delivered), so a standby that takes over, or a rebuild, shows the
attempts the old leader made.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from foto3d.libs.sqlitefile import SqliteFile
from foto3d.proto.books import DeliveryRecorded, EndpointRecorded

SCHEMA = """
PRAGMA journal_mode=WAL;
PRAGMA synchronous=NORMAL;
CREATE TABLE IF NOT EXISTS endpoints (
    endpoint_id TEXT PRIMARY KEY,
    customer TEXT NOT NULL,
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    created REAL NOT NULL,
    created_by TEXT NOT NULL,
    removed REAL
);
CREATE INDEX IF NOT EXISTS endpoints_customer ON endpoints(customer);
CREATE TABLE IF NOT EXISTS deliveries (
    delivery_id TEXT PRIMARY KEY,
    endpoint_id TEXT NOT NULL,
    customer TEXT NOT NULL,
    type TEXT NOT NULL,
    created REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    last_status INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    last_attempt REAL NOT NULL DEFAULT 0,
    delivered REAL NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS deliveries_customer ON deliveries(customer, created);
"""
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
ENDPOINT_COLUMNS = ("endpoint_id", "customer", "url", "secret", "created", "created_by", "removed")
DELIVERY_COLUMNS = (
    "delivery_id", "endpoint_id", "customer", "type", "created", "state", "attempts", "last_status",
    "last_error", "last_attempt", "delivered",
)  # fmt: skip


def endpoint_recorded(row: dict[str, Any]) -> EndpointRecorded:
    return EndpointRecorded(**{c: row[c] for c in ENDPOINT_COLUMNS})


def delivery_recorded(row: dict[str, Any]) -> DeliveryRecorded:
    fields = {c: row[c] for c in DELIVERY_COLUMNS if c != "type"}
    return DeliveryRecorded(**fields, webhook_type=row["type"])


class WebhookBook(SqliteFile):
    schema = SCHEMA
    what = "webhook book"
    # Told every endpoint row this instance changed (the leader publishes it).
    changed: Callable[[dict[str, Any]], Awaitable[None]] | None = None
    # Told every delivery row this instance queued or attempted (the leader publishes it).
    delivery_changed: Callable[[dict[str, Any]], Awaitable[None]] | None = None

    async def _changed(self, endpoint_id: str) -> None:
        row = await self.endpoint(endpoint_id)
        if self.changed is not None and row is not None:
            await self.changed(row)

    async def _delivery_changed(self, delivery_id: str) -> None:
        row = await self.delivery(delivery_id)
        if self.delivery_changed is not None and row is not None:
            await self.delivery_changed(row)

    async def fold_delivery(self, ev: DeliveryRecorded) -> None:
        """Apply a recorded delivery row (idempotent): the row with more attempts (or the same
        number, tried later) wins, and a delivered one stays delivered."""
        values = tuple(ev.webhook_type if c == "type" else getattr(ev, c) for c in DELIVERY_COLUMNS)
        newer = ("state", "attempts", "last_status", "last_error", "last_attempt")
        await self._exec(
            f"INSERT INTO deliveries({', '.join(DELIVERY_COLUMNS)}) VALUES ({', '.join('?' * len(values))})"
            " ON CONFLICT(delivery_id) DO UPDATE SET "
            + ", ".join(f"{c}=excluded.{c}" for c in newer)
            + ", delivered=max(deliveries.delivered, excluded.delivered)"
            " WHERE deliveries.state != 'delivered' AND (excluded.attempts > deliveries.attempts"
            " OR (excluded.attempts = deliveries.attempts AND excluded.last_attempt > deliveries.last_attempt)"
            " OR excluded.state = 'delivered')",
            values,
        )

    async def fold(self, ev: EndpointRecorded) -> None:
        """Apply a recorded endpoint row (idempotent; the first removal stays)."""
        await self._exec(
            f"INSERT INTO endpoints({', '.join(ENDPOINT_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(endpoint_id) DO UPDATE SET removed=COALESCE(endpoints.removed, excluded.removed)",
            tuple(getattr(ev, c) for c in ENDPOINT_COLUMNS),
        )

    async def _exec(self, sql: str, params: tuple[Any, ...]) -> int:
        async with self._write:
            cur = await self.db.execute(sql, params)
            await self.db.commit()
            return cur.rowcount

    async def _all(self, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        async with self.db.execute(sql, params) as cur:
            return [dict(r) for r in await cur.fetchall()]

    # -- endpoints ---------------------------------------------------------------------------

    async def add_endpoint(self, customer: str, url: str, actor: str) -> dict[str, Any]:
        endpoint_id = f"we_{secrets.token_hex(8)}"
        secret = f"whsec_{secrets.token_urlsafe(32)}"
        await self._exec(
            "INSERT INTO endpoints(endpoint_id, customer, url, secret, created, created_by) VALUES (?, ?, ?, ?, ?, ?)",
            (endpoint_id, customer, url, secret, time.time(), actor),
        )
        await self._changed(endpoint_id)
        row = await self.endpoint(endpoint_id)
        assert row is not None
        return row

    async def remove_endpoint(self, endpoint_id: str) -> bool:
        n = await self._exec(
            "UPDATE endpoints SET removed=? WHERE endpoint_id=? AND removed IS NULL",
            (time.time(), endpoint_id),
        )
        if n == 1:
            await self._changed(endpoint_id)
        return n == 1

    async def endpoint(self, endpoint_id: str) -> dict[str, Any] | None:
        rows = await self._all("SELECT * FROM endpoints WHERE endpoint_id=?", (endpoint_id,))
        return rows[0] if rows else None

    async def endpoints(self, customer: str = "") -> list[dict[str, Any]]:
        """Endpoints in use (of one customer, or all)."""
        if customer:
            return await self._all(
                "SELECT * FROM endpoints WHERE customer=? AND removed IS NULL ORDER BY created", (customer,)
            )
        return await self._all("SELECT * FROM endpoints WHERE removed IS NULL ORDER BY customer, created", ())

    async def all_endpoints(self) -> list[dict[str, Any]]:
        """Every endpoint ever added, removed ones included."""
        return await self._all("SELECT * FROM endpoints ORDER BY created", ())

    # -- the delivery log ----------------------------------------------------------------------

    async def delivery(self, delivery_id: str) -> dict[str, Any] | None:
        rows = await self._all("SELECT * FROM deliveries WHERE delivery_id=?", (delivery_id,))
        return rows[0] if rows else None

    async def logged(
        self, delivery_id: str, endpoint_id: str, customer: str, type_: str, created: float
    ) -> None:
        n = await self._exec(
            "INSERT OR IGNORE INTO deliveries(delivery_id, endpoint_id, customer, type, created)"
            " VALUES (?, ?, ?, ?, ?)",
            (delivery_id, endpoint_id, customer, type_, created),
        )
        if n == 1:
            await self._delivery_changed(delivery_id)

    async def attempted(self, delivery_id: str, status: int, error: str, state: str) -> None:
        now = time.time()
        await self._exec(
            "UPDATE deliveries SET attempts=attempts+1, last_status=?, last_error=?, last_attempt=?,"
            " state=CASE WHEN state='delivered' THEN state ELSE ? END,"
            " delivered=CASE WHEN ?='delivered' AND delivered=0 THEN ? ELSE delivered END"
            " WHERE delivery_id=?",
            (status, error[:500], now, state, state, now, delivery_id),
        )
        await self._delivery_changed(delivery_id)

    async def deliveries(self, customer: str = "", limit: int = 100) -> list[dict[str, Any]]:
        if customer:
            return await self._all(
                "SELECT * FROM deliveries WHERE customer=? ORDER BY created DESC LIMIT ?", (customer, limit)
            )
        return await self._all("SELECT * FROM deliveries ORDER BY created DESC LIMIT ?", (limit,))
