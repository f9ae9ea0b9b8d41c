"""Heartbeats: sending them, and reading everyone's last one back.

Every long-running participant (service, trainer, rig, running job) publishes a
:class:`~foto3d.proto.heartbeat.Heartbeat` on ``f3d.hb.<kind>.<id>`` every few
seconds with a plain core publish: cheap, and a lost beat is harmless because the
next one follows. The HEARTBEATS stream keeps only the latest message per subject
(``max_msgs_per_subject=1``), so "who was last seen when" survives any reader's
restart, and anyone can read it back with :func:`read_heartbeats`.

Liveness is judged from the *server's* receive time, not the sender's clock:
alive within 1.5 intervals, late until the grace (default 3 intervals), lost after
it. A final beat with ``stopping=True`` marks a planned stop (not an interruption).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import msgspec
import nats.errors
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from foto3d import __version__
from foto3d.libs.bus.connection import Bus
from foto3d.libs.tasks import cancel_and_wait
from foto3d.proto import subjects
from foto3d.proto.base import encode
from foto3d.proto.heartbeat import Heartbeat, Progress

log = logging.getLogger(__name__)

HEARTBEATS_STREAM = subjects.HEARTBEATS_STREAM
DEFAULT_INTERVAL = 5.0
LivenessState = Literal["alive", "late", "lost", "stopped"]
StateFn = Callable[[], dict[str, Any]]

_decoder = msgspec.json.Decoder(Heartbeat)


def default_grace(interval: float) -> float:
    return 3.0 * interval


class HeartbeatSender:
    """Publish a heartbeat now and every ``interval`` seconds until stopped.

    ``state_fn`` is called before each beat and may return any of ``progress``
    (a :class:`Progress` or a dict of its fields), ``pending``, ``job_id``, ``object_id``
    and ``took_over`` (a :class:`~foto3d.proto.heartbeat.TakeOver`); an exception in it is logged and the beat goes out without it,
    because a broken progress report must not look like a dead participant.
    """

    def __init__(
        self,
        bus_or_nc: Bus | NATS,
        kind: str,
        id: str,
        *,
        host: str | None = None,
        version: str = __version__,
        interval: float = DEFAULT_INTERVAL,
        grace: float | None = None,
        state_fn: StateFn | None = None,
        lineage: str | None = None,
        site: str | None = None,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"heartbeat interval must be positive, got {interval}")
        self.nc: NATS = bus_or_nc.nc if isinstance(bus_or_nc, Bus) else bus_or_nc
        self.kind = kind
        self.id = id
        self.host = host or socket.gethostname()
        self.version = version
        self.interval = interval
        self.grace = grace
        self.state_fn = state_fn
        self.lineage = lineage
        self.site = site
        self.started_at = time.time()
        self.subject = subjects.heartbeat(kind, id)
        self.sent = 0
        self.last_beat_at: float | None = None
        self._task: asyncio.Task[None] | None = None
        # Validate kind/id now, so a bad name fails at construction, not silently in the loop.
        self.build()

    def build(self, *, stopping: bool = False) -> Heartbeat:
        extra: dict[str, Any] = {}
        if self.state_fn is not None:
            try:
                extra = dict(self.state_fn())
            except Exception:
                log.exception("heartbeat %s/%s: state_fn failed; beat sent without state", self.kind, self.id)
        progress = extra.get("progress")
        if isinstance(progress, dict):
            progress = msgspec.convert(progress, Progress)
        fields: dict[str, Any] = {
            "kind": self.kind,
            "id": self.id,
            "host": self.host,
            "version": self.version,
            "ts": time.time(),
            "interval_s": self.interval,
            "grace_s": self.grace,
            "progress": progress,
            "pending": int(extra.get("pending", 0) or 0),
            "stopping": stopping,
            "job_id": extra.get("job_id"),
            "object_id": extra.get("object_id"),
            "lineage": self.lineage,
            "started_at": self.started_at,
            "site": self.site,
            "took_over": extra.get("took_over"),
        }
        # Decoding through the contract validates kind/id patterns with a clear message.
        return msgspec.json.decode(encode(Heartbeat(**fields)), type=Heartbeat)

    async def beat(self, *, stopping: bool = False) -> None:
        """Publish one heartbeat now (also useful right after a progress change)."""
        try:
            await self.nc.publish(self.subject, encode(self.build(stopping=stopping)))
            self.sent += 1
            self.last_beat_at = time.time()
        except nats.errors.Error as exc:
            # Core publishes are buffered while reconnecting; a closed connection only loses beats.
            log.debug("heartbeat %s not sent: %r", self.subject, exc)

    def start(self) -> asyncio.Task[None]:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"heartbeat:{self.subject}")
        return self._task

    async def _run(self) -> None:
        while True:
            await self.beat()
            await asyncio.sleep(self.interval)

    async def stop(self, clean: bool = True) -> None:
        """Stop beating; with ``clean`` send a last beat with ``stopping=True`` (a planned stop)."""
        task, self._task = self._task, None
        await cancel_and_wait(task)
        # Without a live connection the goodbye cannot arrive; do not hold up the shutdown for it.
        if clean and self.nc.is_connected:
            await self.beat(stopping=True)
            with contextlib.suppress(Exception):
                await self.nc.flush(timeout=1)


@dataclass(frozen=True)
class Seen:
    """A participant's last heartbeat and when the server received it (epoch seconds)."""

    beat: Heartbeat
    seen_at: float

    @property
    def key(self) -> tuple[str, str]:
        return (self.beat.kind, self.beat.id)

    @property
    def lineage(self) -> tuple[str, str, str]:
        """(kind, host, lineage): instances that replace one another across restarts.

        Beats without a lineage (older senders) fall back to the service rule, where the id
        is ``<service>.<instance>``, and otherwise to the id itself.
        """
        b = self.beat
        name = b.lineage or (b.id.split(".", 1)[0] if b.kind == "service" and "." in b.id else b.id)
        return (b.kind, b.host, name)

    @property
    def grace(self) -> float:
        return self.beat.grace_s if self.beat.grace_s else default_grace(self.beat.interval_s)

    def age(self, now: float | None = None) -> float:
        return max(0.0, (time.time() if now is None else now) - self.seen_at)

    def state(self, now: float | None = None) -> LivenessState:
        if self.beat.stopping:
            return "stopped"
        age = self.age(now)
        if age <= min(1.5 * self.beat.interval_s, self.grace):
            return "alive"
        return "late" if age <= self.grace else "lost"

    def as_dict(self, now: float | None = None) -> dict[str, Any]:
        b = self.beat
        p = b.progress
        return {
            "kind": b.kind,
            "id": b.id,
            "host": b.host,
            "version": b.version,
            "state": self.state(now),
            "age_s": round(self.age(now), 3),
            "seen_at": self.seen_at,
            "interval_s": b.interval_s,
            "grace_s": self.grace,
            "pending": b.pending,
            "job_id": b.job_id,
            "object_id": b.object_id,
            "progress": msgspec.to_builtins(p) if p is not None else None,
        }


# How long a cleanly stopped participant that nobody replaced still shows in the status views.
STOPPED_SHOWN_S = 3600.0


def predecessors(new: Seen, others: Iterable[Seen], now: float | None = None) -> list[Seen]:
    """Earlier instances that ``new`` replaces: same kind, host, lineage and site, no longer
    alive, and (when the beats say) silent since before ``new`` started.

    An instance that ran beside ``new`` is a sibling (a standby queue on the same host): its
    silence is a real loss, not a restart. A restart never moves to another site, so an
    instance at another site is never a successor, even on a host of the same name: the
    start-time rule alone cannot tell a sibling whose only beat came just before ``new``
    started (an on-prem queue killed with its site within a beat of the cloud standby's
    start) from a process that restarted, and took that silence for a restart.
    """
    now = time.time() if now is None else now
    line = new.lineage
    started = new.beat.started_at
    return [
        s
        for s in others
        if s.key != new.key
        and s.lineage == line
        and s.beat.site == new.beat.site
        and s.seen_at < new.seen_at
        and s.state(now) != "alive"
        and (started is None or s.beat.ts <= started)
    ]


def current(
    seen: Iterable[Seen], now: float | None = None, stopped_shown: float = STOPPED_SHOWN_S
) -> list[Seen]:
    """What the status views list: without replaced instances and long-stopped ones.

    A stopped or silent instance replaced by a newer one of its lineage is history, and so is
    a clean stop older than ``stopped_shown`` seconds.
    """
    now = time.time() if now is None else now
    everyone = list(seen)
    replaced = {p.key for s in everyone for p in predecessors(s, everyone, now)}
    return [
        s for s in everyone if s.key not in replaced and not (s.beat.stopping and s.age(now) > stopped_shown)
    ]


def decode_heartbeat(data: bytes) -> Heartbeat:
    """Decode and validate one heartbeat payload; raises ``msgspec.ValidationError``/``DecodeError``."""
    return _decoder.decode(data)


async def read_heartbeats(js: JetStreamContext) -> tuple[list[Seen], int]:
    """Everyone's last heartbeat from the HEARTBEATS stream, and how many were unreadable.

    Works without the notifier: the stream itself is the store.
    """
    try:
        info = await js.stream_info(HEARTBEATS_STREAM, subjects_filter=subjects.HEARTBEATS_ALL)
    except NotFoundError:
        raise LookupError(
            f"the {HEARTBEATS_STREAM} stream does not exist yet: start the system (foto3d up) first"
        ) from None
    names = sorted((info.state.subjects or {}).keys()) if info.state else []

    async def last(subject: str) -> Seen | None:
        try:
            raw = await js.get_last_msg(HEARTBEATS_STREAM, subject)
        except NotFoundError:
            return None  # aged out between listing and reading
        try:
            beat = decode_heartbeat(raw.data or b"")
        except (msgspec.ValidationError, msgspec.DecodeError):
            raise ValueError(subject) from None
        seen_at = raw.time.timestamp() if raw.time else beat.ts
        return Seen(beat=beat, seen_at=seen_at)

    results = await asyncio.gather(*(last(s) for s in names), return_exceptions=True)
    seen: list[Seen] = []
    malformed = 0
    for r in results:
        if isinstance(r, Seen):
            seen.append(r)
        elif isinstance(r, ValueError):
            malformed += 1
        elif isinstance(r, BaseException):
            raise r
    return seen, malformed


# How long a scaler gets to start a trainer before a waiting job is said to have none coming.
TRAINER_START_S = 30.0
_LIVING = ("alive", "late")


def no_trainer_note(seen: Iterable[Seen], waiting_since: float, now: float | None = None) -> str | None:
    """What to tell someone whose job waits, when no trainer beats; None when one is alive.

    A scaler that is alive may still be starting one, so for the first ``TRAINER_START_S``
    seconds the note says so instead of declaring that none can start.
    """
    now = time.time() if now is None else now
    living = [s for s in seen if s.state(now) in _LIVING]
    if any(s.beat.kind == "trainer" for s in living):
        return None
    at = time.strftime("%H:%M:%S", time.gmtime(waiting_since))
    scaler = any(s.beat.kind == "service" and s.lineage[2] == "scaler" for s in living)
    if scaler and now - waiting_since < TRAINER_START_S:
        return f"no trainer is alive yet — waiting since {at} UTC; the scaler starts one if this host can"
    return f"no trainer is alive or can start here — waiting since {at} UTC"


async def waiting_note(js: JetStreamContext, waiting_since: float) -> str | None:
    """:func:`no_trainer_note` from the HEARTBEATS stream (None when it cannot be read)."""
    try:
        seen, _ = await read_heartbeats(js)
    except LookupError:
        return None
    return no_trainer_note(seen, waiting_since)
