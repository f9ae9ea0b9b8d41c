"""`foto3d submit` trains only registered objects, and every command records the same actor."""

from __future__ import annotations

import asyncio
import json
import logging
import shlex
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from foto3d.libs.bus.connection import Bus
from foto3d.libs.config import Settings
from foto3d.proto import subjects
from foto3d.proto.jobs import JobQueued, JobStarted, JobSucceeded, Priority, StepTiming, TrainOptions
from testkit.running import running_services
from testkit.waiting import eventually
from tests.catalog.helpers import make_artifacts


async def foto3d(settings: Settings, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    urls = ",".join(settings.nats_urls or [])
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "foto3d.cli.main", *args, "--nats", urls, "--data", str(settings.data_dir),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


def suggested_command(err: str) -> list[str]:
    """The `foto3d …` command a refusal names, as argv after `foto3d`."""
    start = err.index("foto3d objects ")
    end = min(i for i in (err.find(")", start), err.find("`", start), len(err)) if i != -1)
    return shlex.split(err[start:end])[1:]


def make_dataset(folder: Path) -> Path:
    (folder / "images").mkdir(parents=True)
    for i in range(3):
        (folder / "images" / f"frame_{i:05d}.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return folder


async def test_submit_refuses_unregistered_objects_and_names_the_command(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    dataset = make_dataset(tmp_path / "photos")
    async with running_services(settings, ["catalog", "queue"], http=False):
        # A customer nobody added: nothing is queued, the refusal says how to add it.
        rc, out, err = await foto3d(
            settings, "submit", "--object", "zzz-chair-001", "--dataset", str(dataset)
        )
        assert rc == 2 and out == "", err
        assert "unknown customer 'zzz'" in err and "foto3d objects customer-add zzz" in err
        rc, out, _ = await foto3d(settings, "jobs", "--json")
        assert rc == 0 and json.loads(out)["jobs"] == []

        # `--customer Acme`: the suggested command is one the catalog accepts, and it works.
        rc, _, err = await foto3d(settings, "objects", "register", "--customer", "Acme", "--name", "Chair")
        assert rc == 2 and "customer-add acme" in err, err
        rc, out, err = await foto3d(settings, *suggested_command(err))
        assert rc == 0 and "added customer acme (Acme)" in out, err
        rc, _, err = await foto3d(settings, "objects", "register", "--customer", "Acme", "--name", "Chair")
        assert rc == 2 and "did you mean 'acme'" in err, err

        # A known customer but an object never registered: the refusal names `objects register`.
        rc, _, err = await foto3d(settings, "submit", "--object", "acme-chair-001", "--dataset", str(dataset))
        assert (
            rc == 2
            and "acme-chair-001 is not registered" in err
            and "objects register --customer acme" in err
        )
        rc, out, _ = await foto3d(settings, "objects", "register", "--customer", "acme", "--name", "Chair")
        assert rc == 0 and out.strip() == "acme-chair-001"

        # Registered: accepted, and `--as` is who the job records as its submitter.
        rc, out, err = await foto3d(
            settings,
            "submit",
            "--object",
            "acme-chair-001",
            "--dataset",
            str(dataset),
            "--as",
            "maria",
            "--json",
        )
        assert rc == 0, err
        job_id = json.loads(out)["job_id"]
        rc, out, _ = await foto3d(settings, "job", job_id, "--json")
        assert rc == 0 and json.loads(out)["timeline"][0]["text"].endswith("by maria"), out

    # Taking the lead is routine: INFO, not a WARNING that looks like trouble.
    leader = [r for r in caplog.records if "is now the leader" in r.getMessage()]
    assert leader and all(r.levelno == logging.INFO for r in leader)


async def trained_job(
    bus: Bus,
    object_id: str,
    dataset: Path,
    priority: Priority = Priority.NORMAL,
    options: TrainOptions | None = None,
    metrics: dict[str, float] | None = None,
    timings: list[StepTiming] | None = None,
) -> str:
    """Publish one successful job's events, as the queue and a trainer would, with these settings."""
    job_id = f"job-{uuid.uuid4().hex[:10]}"
    subject, t = subjects.job_events(job_id), time.time()
    await bus.publish(subject, JobQueued(job_id=job_id, object_id=object_id, ts=t, actor="rig-1",
                                         dataset=str(dataset), priority=priority, options=options or TrainOptions()))  # fmt: skip
    await bus.publish(
        subject, JobStarted(job_id=job_id, object_id=object_id, ts=t + 0.01, trainer="t1", host="gpu-1")
    )
    await bus.publish(
        subject,
        JobSucceeded(
            job_id=job_id,
            object_id=object_id,
            ts=t + 0.02,
            artifacts=make_artifacts(dataset.parent / job_id),
            metrics=metrics or {},
            timings=timings or [],
        ),
    )
    return job_id


async def test_resubmit_keeps_the_last_jobs_options_and_takes_overrides(
    settings: Settings, bus: Bus, tmp_path: Path
) -> None:
    dataset = make_dataset(tmp_path / "photos")
    vip = TrainOptions(steps=1000, reduce_keep=0.3, sh_degree=2)
    async with running_services(settings, ["catalog", "queue"], http=False):
        assert (await foto3d(settings, "objects", "customer-add", "acme"))[0] == 0
        ids = []
        for name in ("Chair", "Lamp"):
            rc, out, err = await foto3d(settings, "objects", "register", "--customer", "acme", "--name", name)
            assert rc == 0, err
            ids.append(out.strip())
            await trained_job(bus, ids[-1], dataset, Priority.VIP, vip)

        async def reviewable(object_id: str) -> bool:
            return "in_review" in (await foto3d(settings, "objects", "show", object_id))[1]

        for oid in ids:
            await eventually(lambda oid=oid: reviewable(oid), "the training events")  # type: ignore[misc]
            rc, _, err = await foto3d(settings, "objects", "reject", oid, "--reason", "blurry")
            assert rc == 0, err

        async def queued_job(out: str) -> dict[str, Any]:
            job_id = out.split("as job ")[1].split()[0]
            rc, text, err = await foto3d(settings, "job", job_id, "--json")
            assert rc == 0, err
            job: dict[str, Any] = json.loads(text)["job"]
            return job

        # No options given: the VIP job with 1,000 steps comes back as VIP with 1,000 steps.
        rc, out, err = await foto3d(settings, "objects", "resubmit", ids[0])
        assert rc == 0 and "(vip, " in out and "steps 1000" in out, err
        job = await queued_job(out)
        assert job["priority"] == "vip"
        assert job["options"] | {"formats": None} == {"steps": 1000, "reduce_keep": 0.3, "sh_degree": 2,
                                                      "formats": None}  # fmt: skip

        # An option given overrides that one; the rest are kept.
        rc, out, err = await foto3d(settings, "objects", "resubmit", ids[1], "--steps", "2000", "--no-reduce")
        assert rc == 0, err
        job = await queued_job(out)
        assert job["priority"] == "vip"
        assert job["options"]["steps"] == 2000 and job["options"]["reduce"] is False
        assert job["options"]["reduce_keep"] == 0.3 and job["options"]["sh_degree"] == 2


async def test_job_and_object_show_list_what_a_job_produced(
    settings: Settings, bus: Bus, tmp_path: Path
) -> None:
    dataset = make_dataset(tmp_path / "photos")
    # The metric names the trainer reports (services/trainer/pipeline.py).
    metrics = {"gaussians_raw": 9000.0, "gaussians": 3000.0, "reduced": 1.0, "psnr": 27.5, "bytes_ply": 1.0}
    timings = [StepTiming(step="train", seconds=61.5), StepTiming(step="reduce", seconds=2.25)]
    async with running_services(settings, ["catalog", "queue"], http=False):
        assert (await foto3d(settings, "objects", "customer-add", "acme"))[0] == 0
        oid = (await foto3d(settings, "objects", "register", "--customer", "acme", "--name", "Chair"))[
            1
        ].strip()
        job_id = await trained_job(bus, oid, dataset, metrics=metrics, timings=timings)

        async def shown() -> bool:
            return job_id in (await foto3d(settings, "objects", "show", oid))[1]

        await eventually(shown, "the object's jobs")
        rc, out, _ = await foto3d(settings, "objects", "show", oid)
        assert rc == 0 and "model.ply" in out

        rc, out, _ = await foto3d(settings, "objects", "timeline", oid)
        assert "reduced: 9,000 → 3,000 gaussians" in out, out

        async def succeeded() -> bool:
            return '"succeeded"' in (await foto3d(settings, "job", job_id, "--json"))[1]

        await eventually(succeeded, "the queue's view of the job")
        rc, out, err = await foto3d(settings, "job", job_id, "--json")
        assert rc == 0, err
        detail = json.loads(out)
        results = detail["results"]
        assert [f["name"] for f in results["files"]] == ["model.ply"]
        assert results["files"][0]["gaussians"] == 3000 and results["files"][0]["bytes"] > 0
        assert results["gaussians_before"] == 9000 and results["gaussians_after"] == 3000
        assert results["quality"] == {"psnr": 27.5}
        assert results["steps"] == [{"step": "train", "seconds": 61.5}, {"step": "reduce", "seconds": 2.25}]
        # The timeline names the file as stored, not a made-up "splat.ply".
        assert any(t["text"] == "succeeded: model.ply" for t in detail["timeline"]), detail["timeline"]

        rc, out, _ = await foto3d(settings, "job", job_id)
        assert rc == 0 and "gaussians 9,000 → 3,000" in out and "psnr 27.5" in out and "train 61.5 s" in out
        assert "model.ply" in out
