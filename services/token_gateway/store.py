"""The gateway's own sqlite: credentials (hashes), bans, usage and viewer beacons per day, and how
far each stream was read.

Credentials and usage are folds of the GATEWAY_* streams; each fold and the stream sequence
it reached are written in one transaction, so a restart resumes exactly where it stopped and
a usage delta is never counted twice. Credentials are also held in memory: every request
looks one up.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import aiosqlite
import msgspec

from foto3d.proto import subjects
from foto3d.proto.analytics import BeaconCount, BeaconDelta
from foto3d.proto.gateway import (
    CredentialIssued,
    CredentialKind,
    CredentialRevoked,
    UsageDelta,
    UsageQuery,
    UsageRow,
)
from foto3d.services.token_gateway import sketch
from foto3d.services.token_gateway.credentials import Credential

BEACON_COUNTS = ("views", "orbit", "zoom", "fullscreen", "time_in_view_ms", "errors")
_sketch_encoder = msgspec.json.Encoder()
_sketch_decoder = msgspec.json.Decoder(dict[int, int])

SCHEMA = """
PRAGMA journal_mode=WAL;
CREATE TABLE IF NOT EXISTS credentials (
    credential_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    customer TEXT NOT NULL,
    token_hash TEXT NOT NULL,
    prefix TEXT NOT NULL,
    label TEXT NOT NULL,
    models TEXT NOT NULL,
    origins TEXT NOT NULL,
    expires_at REAL,
    created_at REAL NOT NULL,
    created_by TEXT NOT NULL,
    revoked_at REAL,
    revoked_by TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS credentials_customer ON credentials(customer);
CREATE TABLE IF NOT EXISTS bans (
    ip TEXT PRIMARY KEY,
    until REAL NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS usage (
    day TEXT NOT NULL,
    customer TEXT NOT NULL,
    object_id TEXT NOT NULL,
    credential_id TEXT NOT NULL,
    requests INTEGER NOT NULL,
    denied INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    PRIMARY KEY (day, customer, object_id, credential_id)
);
-- Viewer beacons summed per day, customer, model, domain and device class (analytics.py).
-- The sketches are JSON objects {bucket index: count} (sketch.py), never samples.
CREATE TABLE IF NOT EXISTS beacons (
    day TEXT NOT NULL,
    customer TEXT NOT NULL,
    object_id TEXT NOT NULL,
    domain TEXT NOT NULL,
    device TEXT NOT NULL,
    views INTEGER NOT NULL,
    orbit INTEGER NOT NULL,
    zoom INTEGER NOT NULL,
    fullscreen INTEGER NOT NULL,
    time_in_view_ms INTEGER NOT NULL,
    errors INTEGER NOT NULL,
    poster TEXT NOT NULL,
    first_frame TEXT NOT NULL,
    PRIMARY KEY (customer, day, object_id, domain, device)
);
CREATE TABLE IF NOT EXISTS applied (
    stream TEXT PRIMARY KEY,
    seq INTEGER NOT NULL
);
"""


def _row_to_credential(r: aiosqlite.Row) -> Credential:
    return Credential(
        credential_id=r["credential_id"],
        kind=CredentialKind(r["kind"]),
        customer=r["customer"],
        token_hash=r["token_hash"],
        prefix=r["prefix"],
        label=r["label"],
        models=tuple(json.loads(r["models"])),
        origins=tuple(json.loads(r["origins"])),
        expires_at=r["expires_at"],
        created_at=r["created_at"],
        created_by=r["created_by"],
        revoked_at=r["revoked_at"],
        revoked_by=r["revoked_by"],
    )


class GatewayStore:
    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db
        self.credentials: dict[str, Credential] = {}
        # What a reader's cache of beacon sums is good for: a counter per (customer, day) bumped by
        # each fold that touches that day, and one bumped by changes to the whole table.
        self.beacons_changed = 0
        self.beacon_days_changed: dict[tuple[str, str], int] = {}

    @classmethod
    async def open(cls, path: Path) -> GatewayStore:
        db = await aiosqlite.connect(path)
        db.row_factory = aiosqlite.Row
        await db.executescript(SCHEMA)
        await db.commit()
        store = cls(db)
        async with db.execute("SELECT * FROM credentials") as cur:
            for r in await cur.fetchall():
                cred = _row_to_credential(r)
                store.credentials[cred.credential_id] = cred
        return store

    async def close(self) -> None:
        await self.db.close()

    # -- stream positions ---------------------------------------------------------------------

    async def applied_seq(self, stream: str) -> int:
        async with self.db.execute("SELECT seq FROM applied WHERE stream=?", (stream,)) as cur:
            row = await cur.fetchone()
        return int(row["seq"]) if row else 0

    async def _mark(self, stream: str, seq: int) -> None:
        await self.db.execute(
            "INSERT INTO applied(stream, seq) VALUES(?, ?) ON CONFLICT(stream) DO UPDATE SET seq=excluded.seq",
            (stream, seq),
        )

    async def reset_stream(self, stream: str, *tables: str) -> None:
        """The stream was recreated (its sequence went backwards): fold it again from the start."""
        for table in tables:
            await self.db.execute(f"DELETE FROM {table}")  # tables are ours, never input
        self.beacons_changed += 1
        await self._mark(stream, 0)
        await self.db.commit()
        if "credentials" in tables:
            self.credentials.clear()

    # -- credentials --------------------------------------------------------------------------

    async def apply_credential(self, ev: CredentialIssued | CredentialRevoked, seq: int | None) -> None:
        """Fold one event; ``seq`` is its stream position (None when applied ahead of the stream)."""
        if isinstance(ev, CredentialIssued):
            cred = Credential(
                credential_id=ev.credential_id,
                kind=ev.kind,
                customer=ev.customer,
                token_hash=ev.token_hash,
                prefix=ev.prefix,
                label=ev.label,
                models=tuple(ev.models),
                origins=tuple(ev.origins),
                expires_at=ev.expires_at,
                created_at=ev.created_at,
                created_by=ev.actor,
            )
            old = self.credentials.get(ev.credential_id)
            if old is not None and old.revoked_at is not None:
                # a revocation that arrived first (never un-revoke)
                cred = dataclasses.replace(cred, revoked_at=old.revoked_at, revoked_by=old.revoked_by)
            await self.db.execute(
                "INSERT OR REPLACE INTO credentials VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    cred.credential_id,
                    cred.kind.value,
                    cred.customer,
                    cred.token_hash,
                    cred.prefix,
                    cred.label,
                    json.dumps(list(cred.models)),
                    json.dumps(list(cred.origins)),
                    cred.expires_at,
                    cred.created_at,
                    cred.created_by,
                    cred.revoked_at,
                    cred.revoked_by,
                ),
            )
        else:
            old = self.credentials.get(ev.credential_id)
            if old is None or old.revoked_at is not None:
                cred = None
            else:
                cred = dataclasses.replace(old, revoked_at=ev.revoked_at, revoked_by=ev.actor)
                await self.db.execute(
                    "UPDATE credentials SET revoked_at=?, revoked_by=? WHERE credential_id=?",
                    (ev.revoked_at, ev.actor, ev.credential_id),
                )
        if seq is not None:
            await self._mark(subjects.GATEWAY_CREDENTIALS_STREAM, seq)
        await self.db.commit()
        if cred is not None:
            self.credentials[cred.credential_id] = cred

    def list_credentials(self, customer: str | None, include_revoked: bool) -> list[Credential]:
        out = [
            c
            for c in self.credentials.values()
            if (customer is None or c.customer == customer) and (include_revoked or c.revoked_at is None)
        ]
        return sorted(out, key=lambda c: (c.customer, -c.created_at))

    # -- bans ---------------------------------------------------------------------------------

    async def save_ban(self, ip: str, until: float, reason: str) -> None:
        await self.db.execute("INSERT OR REPLACE INTO bans VALUES (?,?,?)", (ip, until, reason))
        await self.db.commit()

    async def lift_ban(self, ip: str) -> None:
        await self.db.execute("DELETE FROM bans WHERE ip=?", (ip,))
        await self.db.commit()

    async def active_bans(self) -> dict[str, tuple[float, str]]:
        now = time.time()
        await self.db.execute("DELETE FROM bans WHERE until <= ?", (now,))
        await self.db.commit()
        async with self.db.execute("SELECT ip, until, reason FROM bans") as cur:
            return {r["ip"]: (r["until"], r["reason"]) for r in await cur.fetchall()}

    # -- usage --------------------------------------------------------------------------------

    async def apply_usage(self, delta: UsageDelta, seq: int) -> None:
        await self.db.executemany(
            "INSERT INTO usage VALUES (?,?,?,?,?,?,?) ON CONFLICT(day, customer, object_id, credential_id) "
            "DO UPDATE SET requests=requests+excluded.requests, denied=denied+excluded.denied, "
            "bytes=bytes+excluded.bytes",
            [
                (c.day, c.customer, c.object_id, c.credential_id, c.requests, c.denied, c.bytes)
                for c in delta.counts
            ],
        )
        await self._mark(subjects.GATEWAY_USAGE_STREAM, seq)
        await self.db.commit()

    async def apply_beacons(self, delta: BeaconDelta, seq: int) -> None:
        """Fold one delta: counts add up, sketches add up bucket by bucket (read, merge, write
        in one transaction; only this fold writes the table)."""
        for c in delta.counts:
            day_key = (c.customer, c.day)
            self.beacon_days_changed[day_key] = self.beacon_days_changed.get(day_key, 0) + 1
            key = (c.customer, c.day, c.object_id, c.domain, c.device)
            async with self.db.execute(
                "SELECT * FROM beacons WHERE customer=? AND day=? AND object_id=? AND domain=? AND device=?",
                key,
            ) as cur:
                old = await cur.fetchone()
            poster, first_frame = dict(c.poster), dict(c.first_frame)
            counts = [c.views, c.orbit, c.zoom, c.fullscreen, c.time_in_view_ms, c.errors]
            if old is not None:
                counts = [n + old[col] for n, col in zip(counts, BEACON_COUNTS, strict=True)]
                sketch.merge(poster, _sketch_decoder.decode(old["poster"]))
                sketch.merge(first_frame, _sketch_decoder.decode(old["first_frame"]))
            await self.db.execute(
                "INSERT OR REPLACE INTO beacons VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    c.day,
                    c.customer,
                    c.object_id,
                    c.domain,
                    c.device,
                    *counts,
                    _sketch_encoder.encode(poster).decode(),
                    _sketch_encoder.encode(first_frame).decode(),
                ),
            )
        await self._mark(subjects.GATEWAY_USAGE_STREAM, seq)
        await self.db.commit()

    async def prune_beacons(self, before_day: str) -> int:
        """Drop the days before ``before_day`` (retention); how many rows went."""
        cur = await self.db.execute("DELETE FROM beacons WHERE day < ?", (before_day,))
        await self.db.commit()
        self.beacons_changed += 1
        return cur.rowcount

    async def beacon_rows(self, customer: str, since: str, object_id: str | None) -> list[BeaconCount]:
        sql = "SELECT * FROM beacons WHERE customer=? AND day>=?"
        args = [customer, since]
        if object_id:
            sql += " AND object_id=?"
            args.append(object_id)
        sql += " ORDER BY day DESC, object_id, domain, device LIMIT 20000"
        async with self.db.execute(sql, args) as cur:
            return [
                BeaconCount(
                    day=r["day"],
                    customer=r["customer"],
                    object_id=r["object_id"],
                    domain=r["domain"],
                    device=r["device"],
                    **{col: r[col] for col in BEACON_COUNTS},
                    poster=_sketch_decoder.decode(r["poster"]),
                    first_frame=_sketch_decoder.decode(r["first_frame"]),
                )
                for r in await cur.fetchall()
            ]

    def beacon_day_version(self, customer: str, day: str) -> tuple[int, int]:
        """Changes when the sums of ``customer`` on ``day`` may have changed."""
        return self.beacons_changed, self.beacon_days_changed.get((customer, day), 0)

    async def views_and_first_frames(
        self, customer: str, days: list[str]
    ) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str], dict[int, int]]]:
        """Views and the merged first-frame sketch per (day, domain) of ``customer`` on ``days``:
        what the portal's charts show, over every row (a year of a busy customer is tens of
        thousands). SQLite adds the sketches up itself (``json_each``), so Python sees one row
        per day, domain and bucket, not one per model and device."""
        views: dict[tuple[str, str], int] = {}
        sketches: dict[tuple[str, str], dict[int, int]] = {}
        for i in range(0, len(days), 400):  # well under SQLite's limit of bound values
            chunk = days[i : i + 400]
            marks = ",".join("?" * len(chunk))
            async with self.db.execute(
                f"SELECT day, domain, SUM(views) FROM beacons WHERE customer=? AND day IN ({marks}) "
                "GROUP BY day, domain",
                (customer, *chunk),
            ) as cur:
                for day, domain, n in await cur.fetchall():
                    views[(day, domain)] = int(n)
            async with self.db.execute(
                "SELECT b.day, b.domain, CAST(j.key AS INTEGER), SUM(j.value) "
                f"FROM beacons b, json_each(b.first_frame) j WHERE b.customer=? AND b.day IN ({marks}) "
                "GROUP BY b.day, b.domain, j.key",
                (customer, *chunk),
            ) as cur:
                for day, domain, bucket, n in await cur.fetchall():
                    sketches.setdefault((day, domain), {})[int(bucket)] = int(n)
        return views, sketches

    async def usage(self, q: UsageQuery) -> list[UsageRow]:
        where: list[str] = []
        args: list[str] = []
        for column, value, op in (
            ("customer", q.customer, "="),
            ("object_id", q.object_id, "="),
            ("day", q.since, ">="),
            ("day", q.until, "<="),
        ):
            if value:
                where.append(f"{column} {op} ?")
                args.append(value)
        sql = (
            "SELECT day, customer, object_id, SUM(requests) AS requests, SUM(denied) AS denied, "
            "SUM(bytes) AS bytes FROM usage"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " GROUP BY day, customer, object_id ORDER BY day DESC, customer, object_id LIMIT 5000"
        )
        async with self.db.execute(sql, args) as cur:
            return [
                UsageRow(
                    day=r["day"],
                    customer=r["customer"],
                    object_id=r["object_id"],
                    requests=r["requests"],
                    denied=r["denied"],
                    bytes=r["bytes"],
                )
                for r in await cur.fetchall()
            ]
