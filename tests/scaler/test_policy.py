"""The scaler's decisions, from observed state alone."""

from __future__ import annotations

from foto3d.services.scaler.policy import Machine, TrainerSeen, plan
from foto3d.services.scaler.settings import ScalerSettings

NOW = 10_000.0


def cfg(**kw: object) -> ScalerSettings:
    base: dict[str, object] = {"max_trainers": 4, "idle_grace_s": 60, "startup_timeout_s": 300}
    base.update(kw)
    return ScalerSettings(**base)  # type: ignore[arg-type]


def test_starts_one_machine_per_waiting_job_named_after_it() -> None:
    p = plan(
        cfg=cfg(one_per_dataset=True),
        now=NOW,
        pending=2,
        waiting_jobs=["job-a", "job-b"],
        machines=[],
        trainers={},
        idle_since={},
    )
    assert [(r.token, r.job_id, r.max_jobs) for r in p.start] == [
        ("job-a", "job-a", 1),
        ("job-b", "job-b", 1),
    ]


def test_idle_and_starting_trainers_cover_waiting_work() -> None:
    machines = [Machine("m1", NOW - 10)]  # starting, no heartbeat yet
    trainers = {"onprem-1": TrainerSeen("onprem-1", NOW - 1, busy=False)}
    p = plan(
        cfg=cfg(),
        now=NOW,
        pending=3,
        waiting_jobs=["j1", "j2", "j3"],
        machines=machines,
        trainers=trainers,
        idle_since={},
    )
    assert [r.job_id for r in p.start] == ["j3"]
    assert p.states == {"m1": "starting"}


def test_max_trainers_and_spend_cap_limit_starts() -> None:
    kw = {"pending": 10, "waiting_jobs": [], "machines": [], "trainers": {}, "idle_since": {}}
    assert len(plan(cfg=cfg(max_trainers=3), now=NOW, **kw).start) == 3  # type: ignore[arg-type]
    capped = plan(cfg=cfg(max_spend_per_hour=5.0, hourly_price=2.0), now=NOW, **kw)  # type: ignore[arg-type]
    assert len(capped.start) == 2 and any("spend cap" in r for r in capped.reasons)


def test_idle_past_grace_is_stopped_but_min_is_kept() -> None:
    machines = [Machine("m1", NOW - 500), Machine("m2", NOW - 500)]
    trainers = {m.id: TrainerSeen(m.id, NOW - 1, busy=False) for m in machines}
    idle = {"m1": NOW - 120, "m2": NOW - 30}
    p = plan(
        cfg=cfg(), now=NOW, pending=0, waiting_jobs=[], machines=machines, trainers=trainers, idle_since=idle
    )
    assert p.stop == ["m1"]
    p = plan(
        cfg=cfg(min_trainers=2),
        now=NOW,
        pending=0,
        waiting_jobs=[],
        machines=machines,
        trainers=trainers,
        idle_since=idle,
    )
    assert p.stop == []


def test_reaper_takes_silent_and_never_started_machines() -> None:
    machines = [Machine("never", NOW - 400), Machine("silent", NOW - 400), Machine("ok", NOW - 400)]
    trainers = {
        "silent": TrainerSeen("silent", NOW - 120, busy=True),
        "ok": TrainerSeen("ok", NOW - 2, busy=True),
    }
    p = plan(
        cfg=cfg(), now=NOW, pending=0, waiting_jobs=[], machines=machines, trainers=trainers, idle_since={}
    )
    assert sorted(p.reap) == ["never", "silent"] and p.states["ok"] == "busy"


def test_a_waiting_job_with_its_own_machine_gets_no_second_one() -> None:
    machines = [Machine("m1", NOW - 10, job_hint="j1", token="j1")]
    trainers = {"m1": TrainerSeen("m1", NOW - 1, busy=False)}
    p = plan(
        cfg=cfg(one_per_dataset=True),
        now=NOW,
        pending=2,
        waiting_jobs=["j1", "j2"],
        machines=machines,
        trainers=trainers,
        idle_since={},
    )
    assert [r.token for r in p.start] == ["j2"]
