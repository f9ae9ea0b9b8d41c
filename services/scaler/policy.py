"""Decide what to start and what to stop, from what the scaler sees. Pure: no I/O here.

Every round the scaler observes the waiting work, the machines its backend
runs, and the trainers' heartbeats, and gets a :class:`Plan` back:

- a machine is *starting* until its trainer's first heartbeat, *stale* when
  that heartbeat never came within ``startup_timeout_s`` or stopped for longer
  than ``heartbeat_timeout_s`` (the reaper terminates it), *busy* with a job
  in its heartbeat, otherwise *idle*;
- work waits when messages are undelivered; idle trainers (ours or anyone's,
  e.g. the on-prem machines) and starting machines will take it, so only the
  rest asks for new machines, within ``max_trainers`` and the spend cap;
- our idle trainers are stopped after ``idle_grace_s``, keeping ``min_trainers``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from foto3d.services.scaler.settings import ScalerSettings, spend_cap

MachineState = Literal["starting", "idle", "busy", "stale", "stopping"]


@dataclass(frozen=True)
class Machine:
    """A trainer machine (or local process) the backend runs for us."""

    id: str  # also the trainer's heartbeat id
    launched_at: float
    job_hint: str | None = None
    token: str | None = None  # the launch token (the waiting job it was started for)


@dataclass(frozen=True)
class TrainerSeen:
    """A trainer's last heartbeat as the scaler saw it."""

    id: str
    seen_at: float
    busy: bool
    stopping: bool = False


@dataclass(frozen=True)
class LaunchRequest:
    token: str  # idempotency token: the job id the machine is started for, or a fresh id
    job_id: str | None
    max_jobs: int  # 0 = no limit


@dataclass
class Plan:
    start: list[LaunchRequest] = field(default_factory=list)
    stop: list[str] = field(default_factory=list)  # idle past the grace
    reap: list[str] = field(default_factory=list)  # heartbeat never came or expired
    states: dict[str, MachineState] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)


def machine_state(m: Machine, seen: TrainerSeen | None, cfg: ScalerSettings, now: float) -> MachineState:
    if seen is None:
        return "starting" if now - m.launched_at < cfg.startup_timeout_s else "stale"
    if now - seen.seen_at > cfg.heartbeat_timeout_s:
        return "stale"
    if seen.stopping:
        return "stopping"
    return "busy" if seen.busy else "idle"


def plan(
    *,
    cfg: ScalerSettings,
    now: float,
    pending: int,
    waiting_jobs: list[str],
    machines: list[Machine],
    trainers: Mapping[str, TrainerSeen],
    idle_since: Mapping[str, float],
) -> Plan:
    p = Plan()
    ours = {m.id for m in machines}
    for m in machines:
        p.states[m.id] = machine_state(m, trainers.get(m.id), cfg, now)
    p.reap = [mid for mid, st in p.states.items() if st == "stale"]
    active = [mid for mid, st in p.states.items() if st in ("starting", "idle", "busy")]
    idle_ours = [mid for mid in active if p.states[mid] == "idle"]
    idle_others = sum(
        1
        for t in trainers.values()
        if t.id not in ours and not t.busy and not t.stopping and now - t.seen_at <= cfg.heartbeat_timeout_s
    )
    # A waiting job whose own machine is already up or coming needs nothing more, and that
    # machine is not free for other work either (in one-per-dataset mode it is meant for it).
    waiting_set = set(waiting_jobs)
    covering = {m.id for m in machines if m.id in active and m.token is not None and m.token in waiting_set}
    covered_tokens = {m.token for m in machines if m.id in covering}
    uncovered = [t for t in waiting_jobs if t not in covered_tokens]
    free = sum(1 for mid in active if p.states[mid] in ("starting", "idle") and mid not in covering)
    free += idle_others

    want = max(0, pending - len(covered_tokens) - free)
    room = cfg.max_trainers - len(active)
    cap = spend_cap(cfg)
    if cap is not None and cap - len(active) < room:
        room = cap - len(active)
        if want > max(0, room):
            p.reasons.append(f"spend cap: {cap} machine(s) at {cfg.hourly_price}/h")
    if want > room:
        p.reasons.append(f"{pending} job(s) wait; limited to {cfg.max_trainers} trainer(s)")
    count = max(0, min(want, room))
    if len(active) + count < cfg.min_trainers:
        count = max(count, min(cfg.min_trainers, room + len(active)) - len(active))
    # Name each new machine after a waiting job not already covered by a free trainer.
    spare = uncovered[free:]
    for i in range(count):
        job = spare[i] if i < len(spare) else None
        p.start.append(
            LaunchRequest(
                token=job or uuid.uuid4().hex,
                job_id=job,
                max_jobs=1 if cfg.one_per_dataset else 0,
            )
        )

    if pending == 0:
        keep = cfg.min_trainers
        removable = len(active) - keep
        for mid in sorted(idle_ours, key=lambda x: idle_since.get(x, now)):
            if removable <= 0:
                break
            if now - idle_since.get(mid, now) >= cfg.idle_grace_s:
                p.stop.append(mid)
                removable -= 1
    return p
