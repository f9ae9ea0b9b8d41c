"""The scaler's local backend starts real trainer processes (fake nerfstudio) and stops them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from foto3d.libs.bus.connection import Bus
from foto3d.libs.config import Settings
from foto3d.proto.jobs import JobSucceeded
from foto3d.services.scaler.backends.local import LocalBackend
from foto3d.services.scaler.service import Scaler
from testkit.running import running_services
from testkit.waiting import eventually
from tests.trainer.helpers import EventLog, fake_env, make_dataset, submit_work, work_item


@pytest.fixture
def fake_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """This host 'has' nerfstudio (the fakes) and trainers beat fast."""
    for k, v in fake_env({"FOTO3D_TRAINER_HEARTBEAT": "0.3"}).items():
        monkeypatch.setenv(k, v)


def scaler_of(rt: object) -> Scaler:
    svc = rt.services[0]  # type: ignore[attr-defined]
    assert isinstance(svc, Scaler)
    return svc


async def test_starts_a_trainer_for_waiting_work_and_stops_it_when_idle(
    settings: Settings, bus: Bus, fake_host: None, tmp_path: Path
) -> None:
    settings.raw["scaler"] = {"backend": "local", "max_trainers": 1, "idle_grace_s": 1.0, "interval_s": 0.2}
    dataset = make_dataset(tmp_path / "ds")
    items = [work_item(dataset, steps=100) for _ in range(2)]
    logs = [await EventLog.watch(bus, i.job_id) for i in items]
    async with running_services(settings, ["scaler"], http=False) as rt:
        scaler = scaler_of(rt)
        assert scaler.launched == 0
        for item in items:
            await submit_work(bus, item)
        done = [await log.wait_for(JobSucceeded, timeout=30) for log in logs]
        assert scaler.launched == 1, "max_trainers=1 but more than one trainer was started"
        assert done[0].actor == done[1].actor
        backend = scaler.backend
        assert isinstance(backend, LocalBackend)
        proc = next(iter(backend._procs.values())).proc
        # idle for longer than the grace: stopped cleanly (the trainer exits 0)
        await eventually(lambda: scaler.stopped == 1, "the idle trainer to be stopped", 15)
        assert await asyncio.wait_for(proc.wait(), 15) == 0
        await eventually(lambda: not scaler._machines, "the scaler to forget the stopped trainer", 5)
    assert (settings.data_dir / "scaler" / "local").is_dir()


async def test_one_trainer_per_dataset_exits_after_its_job(
    settings: Settings, bus: Bus, fake_host: None, tmp_path: Path
) -> None:
    settings.raw["scaler"] = {
        "backend": "local",
        "max_trainers": 2,
        "one_per_dataset": True,
        "idle_grace_s": 60.0,
        "interval_s": 0.2,
    }
    dataset = make_dataset(tmp_path / "ds")
    items = [work_item(dataset, steps=100) for _ in range(2)]
    logs = [await EventLog.watch(bus, i.job_id) for i in items]
    for item in items:
        await submit_work(bus, item)
    async with running_services(settings, ["scaler"], http=False) as rt:
        scaler = scaler_of(rt)
        done = [await log.wait_for(JobSucceeded, timeout=30) for log in logs]
        assert done[0].actor != done[1].actor, "one trainer ran both datasets"
        await eventually(lambda: scaler.launched == 2 and not scaler._machines, "both trainers to exit", 20)
        assert scaler.stopped == 0, "the trainers should have exited by themselves"


async def test_says_plainly_when_no_trainer_can_start_here(
    settings: Settings, bus: Bus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    settings.raw["scaler"] = {"backend": "local", "interval_s": 0.1}
    item = work_item(make_dataset(tmp_path / "ds"))
    await submit_work(bus, item)
    async with running_services(settings, ["scaler"], http=False) as rt:
        scaler = scaler_of(rt)
        assert "no trainer can start on this host: ns-train is not on PATH" in scaler.banner()[0]
        await eventually(lambda: scaler.last_view.pending == 1, "the scaler to see the waiting job", 5)
        assert scaler.launched == 0
        health = scaler.health()
        assert health.state == "degraded" and "1 job(s) wait" in health.detail
