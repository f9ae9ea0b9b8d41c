"""Watching heartbeats: who is alive, and who went silent for longer than their grace.

Live beats arrive by a core subscription on ``f3d.hb.>``; at start the last beat of
everyone is read back from the HEARTBEATS stream, so a restarted notifier still
knows who was there. Ages are measured from receive time (the server's time for
the stored beats), never from the sender's clock. While the notifier itself is
cut off from NATS it cannot tell silence from its own deafness, so it judges
nobody, and after a reconnect everyone gets a fresh grace.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import msgspec
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from foto3d.libs.bus.connection import Bus
from foto3d.libs.heartbeat import Seen, current, decode_heartbeat, predecessors, read_heartbeats
from foto3d.libs.tasks import cancel_and_wait
from foto3d.proto import subjects
from foto3d.services.notifier.starved import Starvation

log = logging.getLogger(__name__)
Key = tuple[str, str]
LostCallback = Callable[[Seen], Awaitable[None]]
BackCallback = Callable[[Seen, str], Awaitable[None]]
StarvedCallback = Callable[[Starvation], Awaitable[None]]
FedCallback = Callable[[str], Awaitable[None]]
TakeoverCallback = Callable[[Seen], Awaitable[None]]


@dataclass
class HeartbeatWatch:
    bus: Bus
    on_lost: LostCallback
    on_back: BackCallback
    alerted: set[Key]
    # Kinds whose silence is normal unless they hold unsent work (a rig switched off at night).
    quiet_kinds: frozenset[str] = frozenset({"rig"})
    tick: float = 0.1
    # Jobs waiting with no trainer alive: alert after this many seconds (None: never).
    no_trainer_wait: float | None = None
    on_starved: StarvedCallback | None = None
    on_fed: FedCallback | None = None
    starved_alerted: bool = False
    # A participant leading in another's place (its beats carry ``took_over``).
    on_takeover: TakeoverCallback | None = None
    starvation: Starvation = field(default_factory=Starvation)
    participants: dict[Key, Seen] = field(default_factory=dict)
    malformed: int = 0
    last_malformed: str = ""
    _sub: Subscription | None = None
    _task: asyncio.Task[None] | None = None
    _reconnects: int = 0
    # Takeovers already handed on (every beat of the new leader repeats its takeover).
    _takeovers: set[tuple[str, str, float]] = field(default_factory=set)

    async def start(self) -> None:
        self._sub = await self.bus.nc.subscribe(subjects.HEARTBEATS_ALL, cb=self._on_msg)
        try:
            stored, bad = await read_heartbeats(self.bus.js)
        except LookupError:
            stored, bad = [], 0
        self.malformed += bad
        for s in stored:
            cur = self.participants.get(s.key)
            if cur is None or cur.seen_at < s.seen_at:
                self.participants[s.key] = s
        self._reconnects = self.bus.reconnects
        self._task = asyncio.create_task(self._run(), name="notifier:heartbeats")

    async def stop(self) -> None:
        if self._task:
            await cancel_and_wait(self._task)
            self._task = None
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None

    async def _on_msg(self, msg: Msg) -> None:
        try:
            beat = decode_heartbeat(msg.data)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            self.malformed += 1
            self.last_malformed = f"{msg.subject}: {exc}"
            log.warning("ignored a malformed heartbeat on %s: %s", msg.subject, exc)
            return
        seen = Seen(beat=beat, seen_at=time.time())
        await self._takeover(seen)
        self.participants[seen.key] = seen
        # Forget an alert only once it is closed: if closing fails, the next beat tries again.
        try:
            if seen.key in self.alerted:
                await self.on_back(seen, "recovered")
                self.alerted.discard(seen.key)
            for old in self._predecessors(seen):
                if old in self.alerted:
                    await self.on_back(self.participants[old], f"replaced by {beat.id}")
                    self.alerted.discard(old)
                self.participants.pop(old, None)
        except Exception:
            # (nats-py would swallow it silently)
            log.exception("could not close the interruption alert of %s/%s", beat.kind, beat.id)

    async def _takeover(self, seen: Seen) -> None:
        """Hand on a takeover once, unless it followed a planned stop at the same site."""
        t = seen.beat.took_over
        if t is None or seen.beat.stopping or self.on_takeover is None:
            return
        key = (seen.beat.kind, seen.beat.id, t.at)
        if key in self._takeovers:
            return
        self._takeovers.add(key)
        before = self.participants.get((seen.beat.kind, t.previous))
        # The old holder said goodbye before giving the lease up: a restart or a deploy, not news.
        if before is not None and before.beat.stopping and t.previous_site == seen.beat.site:
            return
        try:
            await self.on_takeover(seen)
        except Exception:
            self._takeovers.discard(key)  # the next beat tries again
            log.exception("could not record the takeover by %s/%s", seen.beat.kind, seen.beat.id)

    def _predecessors(self, new: Seen) -> list[Key]:
        """Earlier instances ``new`` replaces (a restarted process: same kind, host and lineage)."""
        return [s.key for s in predecessors(new, list(self.participants.values()))]

    def should_alert(self, s: Seen) -> bool:
        return s.beat.kind not in self.quiet_kinds or s.beat.pending > 0

    async def check(self, now: float | None = None) -> None:
        """Raise an interruption for everyone silent past their grace (once per silence)."""
        now = time.time() if now is None else now
        for s in list(self.participants.values()):
            for old in self._predecessors(s):
                if old not in self.alerted:
                    self.participants.pop(old, None)
        for key, s in list(self.participants.items()):
            if key in self.alerted or s.beat.stopping:
                continue
            if s.age(now) > s.grace and self.should_alert(s):
                self.alerted.add(key)
                try:
                    await self.on_lost(s)
                except Exception:
                    self.alerted.discard(key)
                    log.exception("could not raise the interruption alert for %s/%s", *key)
        await self._check_starvation(now)

    async def _check_starvation(self, now: float) -> None:
        st = self.starvation
        st.update(self.participants.values(), now)
        try:
            if self.starved_alerted and st.since is None and self.on_fed is not None:
                await self.on_fed("a trainer is alive" if st.queued else "no job waits any more")
                self.starved_alerted = False
            elif (
                not self.starved_alerted
                and self.no_trainer_wait is not None
                and self.on_starved is not None
                and st.overdue(self.no_trainer_wait, now)
            ):
                await self.on_starved(st)
                self.starved_alerted = True
        except Exception:
            log.exception("could not raise or close the no-trainer alert")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.tick)
            if not self.bus.connected:
                continue
            if self.bus.reconnects != self._reconnects:
                self._reconnects = self.bus.reconnects
                now = time.time()
                for key, s in self.participants.items():
                    self.participants[key] = Seen(beat=s.beat, seen_at=max(s.seen_at, now))
                continue
            await self.check()

    def snapshot(self, now: float | None = None) -> list[dict[str, object]]:
        now = time.time() if now is None else now
        return [s.as_dict(now) for s in sorted(current(self.participants.values(), now), key=lambda s: s.key)]
