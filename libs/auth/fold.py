"""An accounts file as a fold of one stream: publish a change first, apply it in stream order.

Both kinds of people the system signs in keep their accounts this way: staff (``AUTH_ACCOUNTS``,
:mod:`foto3d.libs.auth.shared_users`) and the customer portal's (``GATEWAY_PORTAL``, the token
gateway's ``portal/accounts.py``). Every instance folds the stream into its own sqlite file, each
event once, and remembers the last sequence it wrote (in the same transaction as the event), so
a restart goes on from there and an instance that starts with an empty folder reads the whole
stream. An instance that made a change waits until its own fold has reached it, so its next
request sees it; the others see it a moment later.

What an event does to the file is the caller's (``apply``); this module only keeps the order,
the progress and the "first one wins" publishes (compare-and-set on a subject).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import aiosqlite
import msgspec

from foto3d.libs.bus.connection import Bus
from foto3d.libs.bus.follow import StreamFollower
from foto3d.libs.bus.publish import PublishError

log = logging.getLogger(__name__)

EXPECTED_SUBJECT_SEQ = "Nats-Expected-Last-Subject-Sequence"
# Per-message TTL (the stream must allow it): for events that stop mattering (sessions, codes).
TTL = "Nats-TTL"
# While catching up, commit every this many events (one commit per event made an empty
# instance's start several times slower); once caught up, every event on its own.
CATCH_UP_BATCH = 1000

FOLDED_SCHEMA = """
CREATE TABLE IF NOT EXISTS folded (stream TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS cookie_key (one INTEGER PRIMARY KEY CHECK (one = 1), key TEXT NOT NULL);
"""

Apply = Callable[[aiosqlite.Connection, bytes, int], Awaitable[None]]


class StreamFold:
    """Folds ``stream`` (subjects ``subject``) into the sqlite file ``connect`` opens.

    ``tables`` are emptied when the stream turns out to be behind the file (recreated): the file
    is then folded again from the stream's start."""

    def __init__(
        self,
        bus: Bus,
        stream: str,
        subject: str,
        connect: Callable[[], Awaitable[aiosqlite.Connection]],
        apply: Apply,
        tables: tuple[str, ...],
    ) -> None:
        self.bus = bus
        self.stream = stream
        self.subject = subject
        self._connect = connect
        self._apply = apply
        self._tables = tables
        self._folded = 0
        self._progress = asyncio.Condition()
        self._follower: StreamFollower | None = None
        self._db: aiosqlite.Connection | None = None
        self._uncommitted = 0

    async def start(self) -> None:
        """Fold the stream from where this file left it; return once caught up."""
        follower = StreamFollower(self.bus.js, self.stream, self.subject, self._on_event)
        # One connection for the fold, held while it runs: a new one per event (a thread and the
        # schema check each) made catching up with a long stream several times slower.
        db = self._db = await self._connect()
        await db.executescript(FOLDED_SCHEMA)
        async with db.execute("SELECT seq FROM folded WHERE stream=?", (self.stream,)) as cur:
            row = await cur.fetchone()
        done = int(row[0]) if row else 0
        if done > await follower.last_stream_seq():
            log.warning("stream %s is behind its accounts file (recreated?); folding it again", self.stream)
            for table in (*self._tables, "folded"):
                await db.execute(f"DELETE FROM {table}")
            await db.commit()
            done = 0
        self._folded = done
        self._follower = follower
        await follower.start(done + 1)
        await db.commit()  # the catch-up's last batch

    async def stop(self) -> None:
        if self._follower is not None:
            await self._follower.stop()
            self._follower = None
        if self._db is not None:
            await self._db.close()
            self._db = None

    @property
    def folded(self) -> int:
        """The last stream sequence this instance has applied."""
        return self._folded

    async def _on_event(self, data: bytes, seq: int) -> None:
        db = self._db
        if seq > self._folded and db is not None:
            await self._apply(db, data, seq)
            await db.execute("INSERT OR REPLACE INTO folded(stream, seq) VALUES (?, ?)", (self.stream, seq))
            self._uncommitted += 1
            # An event and its sequence are always in one transaction.
            if self._uncommitted >= CATCH_UP_BATCH or (self._follower and self._follower.caught_up.is_set()):
                await db.commit()
                self._uncommitted = 0
        async with self._progress:
            self._folded = max(self._folded, seq)
            self._progress.notify_all()

    async def folded_to(self, seq: int, timeout: float = 30.0) -> None:
        async with self._progress:
            await asyncio.wait_for(self._progress.wait_for(lambda: self._folded >= seq), timeout)

    async def share(self, subject: str, event: msgspec.Struct, headers: dict[str, str] | None = None) -> int:
        """Publish a change and return (its sequence) once this instance's fold holds it."""
        ack = await self.bus.publish(subject, event, headers=headers, deadline=10.0)
        seq = int(ack.seq)
        await self.folded_to(seq)
        return seq

    async def share_first(
        self, subject: str, event: msgspec.Struct, headers: dict[str, str] | None = None
    ) -> bool:
        """Publish ``event`` only if ``subject`` has none yet (compare-and-set); False when another
        was first, once this fold holds everything the stream had then (so holds the winner)."""
        try:
            await self.share(subject, event, {**(headers or {}), EXPECTED_SUBJECT_SEQ: "0"})
            return True
        except PublishError:
            info = await self.bus.js.stream_info(self.stream)
            await self.folded_to(int(info.state.last_seq))
            return False

    async def cookie_key(self, subject: str, proposal: msgspec.Struct) -> bytes:
        """The key every instance signs its cookies with: the one this fold holds, else
        ``proposal`` (an event whose ``apply`` calls :func:`keep_cookie_key`) published as the
        first one (compare-and-set on ``subject``); another instance's if it was first."""
        key = await self._stored_key()
        if key is None:
            await self.share_first(subject, proposal)
            key = await self._stored_key()
        if key is None:
            raise RuntimeError(f"no cookie key on the stream {self.stream}")
        return key

    async def _stored_key(self) -> bytes | None:
        db = await self._connect()
        try:
            async with db.execute("SELECT key FROM cookie_key") as cur:
                row = await cur.fetchone()
        finally:
            await db.close()
        return bytes.fromhex(str(row[0])) if row else None


async def keep_cookie_key(db: aiosqlite.Connection, key_hex: str) -> None:
    """The first cookie key on the stream is the one (a later one is a lost race)."""
    await db.execute("INSERT OR IGNORE INTO cookie_key(one, key) VALUES (1, ?)", (key_hex,))
