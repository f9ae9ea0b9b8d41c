"""What the scaler looks at: work waiting on the WORK consumers, and trainers' heartbeats."""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field

import msgspec
import nats.errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.errors import NotFoundError

from foto3d.libs.bus.connection import Bus
from foto3d.libs.heartbeat import decode_heartbeat, read_heartbeats
from foto3d.proto import subjects
from foto3d.proto.jobs import WorkItem
from foto3d.services.scaler.policy import TrainerSeen

log = logging.getLogger(__name__)

# VIP first: its jobs get machines first.
WORK_CONSUMERS = (subjects.TRAINER_VIP_CONSUMER, subjects.TRAINER_NORMAL_CONSUMER)
PEEK_LIMIT = 50

_work = msgspec.json.Decoder(WorkItem)


@dataclass
class WorkView:
    pending: int = 0  # not yet delivered to any trainer
    in_flight: int = 0  # delivered, not yet acked (running)
    waiting: list[str] = field(default_factory=list)  # launch tokens of undelivered jobs, in order


def launch_token(item: WorkItem) -> str:
    """The first attempt's machine is named after the job; a retry needs a fresh machine."""
    return item.job_id if item.attempt <= 1 else f"{item.job_id}-a{item.attempt}"


async def work_view(bus: Bus, peek: int = PEEK_LIMIT) -> WorkView:
    view = WorkView()
    for durable in WORK_CONSUMERS:
        try:
            info = await bus.js.consumer_info(subjects.WORK_STREAM, durable)
        except NotFoundError:
            continue
        pending = int(info.num_pending or 0)
        view.pending += pending
        view.in_flight += int(info.num_ack_pending or 0)
        seq = int(info.delivered.stream_seq if info.delivered else 0) + 1
        subject = info.config.filter_subject
        for _ in range(min(pending, max(0, peek - len(view.waiting)))):
            try:
                raw = await bus.js.get_msg(subjects.WORK_STREAM, seq=seq, subject=subject, next=True)
            except (NotFoundError, nats.errors.Error):
                break
            seq = int(raw.seq or seq) + 1
            try:
                view.waiting.append(launch_token(_work.decode(raw.data or b"")))
            except (msgspec.ValidationError, msgspec.DecodeError):
                continue
    return view


class TrainerWatch:
    """Trainers' last heartbeats, from the HEARTBEATS stream at start and live after that."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.seen: dict[str, TrainerSeen] = {}
        self._sub: Subscription | None = None

    async def start(self) -> None:
        with contextlib.suppress(LookupError, nats.errors.Error):
            beats, _ = await read_heartbeats(self.bus.js)
            for s in beats:
                if s.beat.kind == "trainer":
                    self._note(s.beat.id, s.seen_at, s.beat.job_id is not None, s.beat.stopping)
        self._sub = await self.bus.nc.subscribe(subjects.heartbeats_of("trainer"), cb=self._on_beat)

    async def _on_beat(self, msg: Msg) -> None:
        try:
            beat = decode_heartbeat(msg.data)
        except (msgspec.ValidationError, msgspec.DecodeError):
            return
        self._note(beat.id, time.time(), beat.job_id is not None, beat.stopping)

    def _note(self, tid: str, seen_at: float, busy: bool, stopping: bool) -> None:
        old = self.seen.get(tid)
        if old is None or seen_at >= old.seen_at:
            self.seen[tid] = TrainerSeen(id=tid, seen_at=seen_at, busy=busy, stopping=stopping)

    def forget_older_than(self, horizon: float) -> None:
        for tid in [t for t, s in self.seen.items() if s.seen_at < horizon]:
            del self.seen[tid]

    async def stop(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None
