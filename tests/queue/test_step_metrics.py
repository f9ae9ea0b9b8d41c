"""Step durations on /metrics: a job that waited and trained shows up in f3d_job_step_seconds."""

from __future__ import annotations

from pathlib import Path

import msgspec

from foto3d.libs.bus.connection import Bus
from foto3d.libs.config import Settings
from foto3d.proto.jobs import SubmitRequest
from foto3d.services.queue.metrics import quantile
from testkit.running import running_services
from testkit.trainer_stub import StubTrainer
from testkit.waiting import eventually
from tests.app.test_metrics import TOKEN, scrape, submit, value


def test_nearest_rank_quantiles() -> None:
    assert quantile([], 0.5) == 0.0
    assert quantile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0
    assert quantile([1.0, 2.0, 3.0, 4.0], 0.95) == 4.0
    assert quantile([7.0], 1.0) == 7.0


async def test_a_finished_job_gives_its_wait_and_training_time(
    settings: Settings, bus: Bus, tmp_path: Path
) -> None:
    settings.raw["metrics"] = {"token": TOKEN}
    dataset = tmp_path / "datasets" / "acme-chair-001"
    (dataset / "images").mkdir(parents=True)
    (dataset / "images" / "frame_00000.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    trainer = StubTrainer(bus, "t1", work_s=0.4)
    async with running_services(settings, ["queue"]) as rt:
        before = await scrape(rt)
        assert value(before, "f3d_job_step_jobs", step="train") == 0
        assert value(before, "f3d_job_step_seconds", step="train", quantile="0.5") == 0
        trainer.start()
        try:
            await submit(
                bus, msgspec.convert({"object_id": "acme-chair-001", "dataset": str(dataset)}, SubmitRequest)
            )

            async def trained() -> bool:
                return value(await scrape(rt), "f3d_job_step_jobs", step="train") == 1

            await eventually(trained, what="the finished job on /metrics", timeout=30, interval=0.25)
        finally:
            await trainer.stop()
        s = await scrape(rt)
        train = value(s, "f3d_job_step_seconds", step="train", quantile="0.5")
        assert train is not None and train >= 0.4
        assert value(s, "f3d_job_step_jobs", step="wait") == 1
        wait = value(s, "f3d_job_step_seconds", step="wait", quantile="1")
        assert wait is not None and wait >= 0
