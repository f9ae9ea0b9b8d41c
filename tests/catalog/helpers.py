"""Shared by the catalog and publisher tests: signed-in HTTP sessions, fake job events, splat
files, named catalog instances run in this process."""

from __future__ import annotations

import hashlib
import time
import uuid
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from foto3d.app.runtime import Runtime
from foto3d.libs.auth import UserStore
from foto3d.libs.bus.connection import Bus
from foto3d.libs.config import Settings
from foto3d.libs.splat import write as write_splat
from foto3d.libs.splat.synthetic import synthetic_object
from foto3d.proto import subjects
from foto3d.proto.jobs import Artifact, JobQueued, JobStarted, JobSucceeded, Priority, TrainOptions

T = TypeVar("T")
PASSWORD = "correct horse battery"


def instance_settings(tmp_path: Path, nats_url: str, instance: str, **catalog: Any) -> Settings:
    """Settings of one named catalog instance (a warm standby per site), its data in its own folder."""
    data = tmp_path / instance
    data.mkdir()
    settings = Settings.load(data_dir=data, nats=nats_url, http_port=0)
    settings.raw["catalog"] = {"create_admin": False, "instance": instance, **catalog}
    return settings


def catalog_of(rt: Runtime) -> Any:
    """The catalog service of a runtime (typed ``Any``: tests look at its parts)."""
    (svc,) = [s for s in rt.services if s.name == "catalog"]
    return svc


async def signed_in(rt: Runtime, settings: Settings, name: str = "rev") -> aiohttp.ClientSession:
    users = UserStore.in_data_dir(settings.data_dir)
    if await users.get(name) is None:
        await users.add(name, PASSWORD, name.title())
    session = aiohttp.ClientSession(base_url=rt.http_url, cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with session.post(
        "/login", data={"username": name, "password": PASSWORD, "next": "/objects"}, allow_redirects=False
    ) as r:
        assert r.status == 302, await r.text()
    return session


async def call(session: aiohttp.ClientSession, method: str, url: str, body: Any = None) -> tuple[int, Any]:
    async with session.request(method, url, json=body) as r:
        return r.status, await r.json()


def make_artifacts(
    folder: Path, gaussians: int = 3000, extra: dict[str, int] | None = None
) -> list[Artifact]:
    """A real .ply splat plus, per ``extra`` format, a file of that many random bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    ply = folder / "model.ply"
    write_splat(synthetic_object(gaussians, sh_degree=1, seed=1), ply)
    files = [(ply, "ply", gaussians)]
    for fmt, size in (extra or {}).items():
        p = folder / f"model.{fmt}"
        p.write_bytes(hashlib.sha256(fmt.encode()).digest() * (size // 32) + b"x" * (size % 32))
        files.append((p, fmt, gaussians))
    return [
        Artifact(
            kind="splat",
            format=fmt,
            uri=p.as_uri(),
            bytes=p.stat().st_size,
            sha256=hashlib.sha256(p.read_bytes()).hexdigest(),
            gaussians=n,
        )
        for p, fmt, n in files
    ]


async def train(
    bus: Bus,
    object_id: str,
    artifacts: list[Artifact],
    job_id: str | None = None,
    dataset: str = "",
    metrics: dict[str, float] | None = None,
) -> str:
    """Publish the queue's events for one successful job, as the queue and trainer would."""
    job_id = job_id or f"job-{uuid.uuid4().hex[:10]}"
    # The three events a tenth of a millisecond apart, not 10 ms: a review stamps itself after
    # the object's last event, and a resubmission's job.queued (the queue's clock, a few ms
    # later) must come after the review; 20 ms ahead of the clock, it sometimes did not.
    t = time.time()
    step = 0.0001
    subject = subjects.job_events(job_id)
    await bus.publish(
        subject,
        JobQueued(
            job_id=job_id,
            object_id=object_id,
            ts=t,
            actor="rig-1",
            dataset=dataset or f"s3://datasets/{object_id}",
            priority=Priority.NORMAL,
            options=TrainOptions(),
        ),
    )
    await bus.publish(
        subject, JobStarted(job_id=job_id, object_id=object_id, ts=t + step, trainer="t1", host="gpu-1")
    )
    await bus.publish(
        subject,
        JobSucceeded(
            job_id=job_id,
            object_id=object_id,
            ts=t + 2 * step,
            artifacts=artifacts,
            metrics=metrics or {"gaussians_before": 9000.0, "gaussians_after": 3000.0},
        ),
    )
    return job_id


APPROVE = {
    "decision": "approved",
    "checklist": {"training_quality": True, "alignment": True, "manual_adjustments": True},
    "comment": "looks good",
}
