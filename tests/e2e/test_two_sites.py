"""The production path across two sites, as far as it runs today (``testkit.two_sites``).

A rig linked to both sites loses them both and captures while offline; the cloud site comes
back (queue and trainer starting with it); the rig links back and uploads the
photos to the cloud's S3 store as a folder with its manifest and submits; the cloud's queue
and trainer (separate ``foto3d serve`` processes, fake ``ns-*``) train it from S3, the first
attempt failing in training and the retry succeeding. Meanwhile the on-prem hub comes up,
the rig fails back to it, and the hub is killed mid-training: the job finishes at the cloud
once, nothing is submitted twice. Every step of the job is one trace, read back from an
OTLP/HTTP receiver; the steps' durations are printed (docs/benchmarks.md keeps them).

Seen while building it: a rig started while one of its sites has never been reachable did
not link to the other within 30 s here; the test starts with both sites up (left for a
rig issue).

Not covered yet (the issue's later steps): review and approval in Chromium, publishing to S3,
`tokens issue`, the shop page and the status card. Containers cannot run on this machine, so
compose and the images are not started here (docs/deploy.md).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from foto3d.libs.bus.connection import Bus, connect
from foto3d.libs.tracing.job import JOB_ID, STEP
from foto3d.proto.jobs import GET, LIST, JobFailed, JobRef, JobsQuery, JobStarted, JobSucceeded, job_id_for
from foto3d.proto.rig import DATASET_MANIFEST
from foto3d.rig.agent import RigAgent
from foto3d.rig.client import RigClient
from foto3d.rig.leaf import start_leaf
from testkit.otlp import OtlpReceiver
from testkit.two_sites import DATASETS_BUCKET, Site, make_site
from testkit.waiting import eventually
from tests.rig.helpers import make_dataset, write_rig
from tests.trainer.helpers import EventLog

RIG = "rig-e2e"
OID = "acme-teapot-001"
STEPS = ("preflight", "process-data", "train", "export", "reduce", "upload")


def _objects(site: Site, prefix: str) -> list[str]:
    listing = site.moto.client().list_objects_v2(Bucket=DATASETS_BUCKET, Prefix=prefix)
    return [o["Key"] for o in listing.get("Contents", [])]


@pytest.mark.timeout(600)  # a few minutes of real processes on a shared 2-core machine
@pytest.mark.usefixtures("aws_env")
async def test_offline_capture_trained_at_the_cloud_from_s3_through_a_hub_kill(tmp_path: Path) -> None:
    otlp = OtlpReceiver()
    buses: list[Bus] = []
    async with otlp.running():
        onprem = await make_site("onprem", tmp_path / "onprem", otlp.url)
        cloud = await make_site("cloud", tmp_path / "cloud", otlp.url)
        rig_dir = tmp_path / "rig"
        settings = write_rig(rig_dir, RIG, [onprem.rig_site(), cloud.rig_site()])
        leaf = start_leaf(rig_dir, settings)
        agent = RigAgent(rig_dir, settings, leaf_url=leaf.client_url)
        try:
            await agent.start()
            client = RigClient(rig_dir, leaf_url=leaf.client_url)

            def linked(name: str | None) -> bool:
                current = agent.sites.current
                return (current.config.name if current is not None else None) == name

            # Both sites up: the rig links to its preferred one, on-prem.
            await eventually(lambda: linked("onprem"), "the rig to link on-prem", timeout=60)

            # 1. Both sites become unreachable; the rig captures offline.
            onprem.hub.stop()
            cloud.hub.stop()
            await eventually(lambda: linked(None), "the rig to go offline", timeout=30)
            captured = time.time()
            folder = make_dataset(tmp_path / "capture", "teapot", [40_000] * 6)
            rid = await client.asubmit(OID, folder, steps=100)
            job_id = job_id_for(rid)
            assert not _objects(cloud, "cloud/"), "nothing may be uploaded while offline"

            # 2. The cloud site comes back with its queue and trainer; the rig links back.
            await cloud.start_hub()
            cloud.serve("queue")
            cloud.serve(
                "trainer",
                {"FAKE_NS_FAIL_ONCE": f"train:{tmp_path / 'failed-once'}", "FAKE_NS_STEP_DELAY": "0.04"},
            )
            bus = await connect([cloud.nats_url], "e2e-cloud")
            buses.append(bus)
            events = await EventLog.watch(bus, job_id)
            await eventually(lambda: linked("cloud"), "the rig to link back to the cloud", timeout=60)

            # 3. The photos are in the cloud's S3 store as a folder, the manifest last.
            prefix = f"cloud/datasets/{RIG}/{rid}/"
            await eventually(
                lambda: f"{prefix}{DATASET_MANIFEST}" in _objects(cloud, prefix), "the upload", timeout=60
            )
            assert len(_objects(cloud, prefix)) == 6 + 1

            # 4. The cloud trains it from S3: the first attempt fails in training, the retry runs.
            failed = await events.wait_for(JobFailed, timeout=90)
            assert failed.step == "train" and failed.attempt == 1
            await events.wait_for(JobStarted, count=2, timeout=60)

            # 5. Mid-training the on-prem hub comes up, the rig fails back to it, and it is killed.
            await onprem.start_hub()
            await eventually(lambda: linked("onprem"), "the rig to fail back on-prem", timeout=30)
            assert not any(isinstance(e, JobSucceeded) for e in events.events), "training ended too soon"
            onprem.hub.kill()
            done = (await eventually(lambda: events.of(JobSucceeded), "the retry to succeed", timeout=120))[0]
            finished = time.time()
            assert done.attempt == 2

            # Nothing lost or doubled: one submission, one job, one success, at the cloud only.
            jobs = await bus.call(LIST, JobsQuery(object_id=OID))
            assert [j.job_id for j in jobs.jobs] == [job_id]
            assert len(events.of(JobSucceeded)) == 1
            assert len(events.of(JobFailed)) == 1

            # 6. One trace for the job, every step in it.
            detail = await bus.call(GET, JobRef(job_id=job_id))
            trace_id = (detail.job.traceparent or "").split("-")[1]

            def steps_of_attempt_2() -> set[object]:
                return {
                    s.attributes.get(STEP)
                    for s in otlp.of(JOB_ID, job_id)
                    if s.attributes.get("foto3d.attempt") == 2
                }

            await eventually(lambda: steps_of_attempt_2() >= set(STEPS), "the retry's step spans", timeout=30)
            spans = otlp.of(JOB_ID, job_id)
            assert {s.trace_id for s in spans} == {trace_id}
            # The split, from the trace (printed for docs/benchmarks.md).
            first = min(s.start_ns for s in spans) / 1e9
            print(f"\ncapture -> submit span at the cloud: {first - captured:.2f} s")
            for step in STEPS:
                for s in sorted(otlp.of(STEP, step), key=lambda s: s.start_ns):
                    if s.attributes.get(JOB_ID) == job_id:
                        secs = (s.end_ns - s.start_ns) / 1e9
                        print(f"attempt {s.attributes.get('foto3d.attempt')} {step}: {secs:.2f} s")
            print(f"capture -> job succeeded: {finished - captured:.2f} s")
        finally:
            for b in buses:
                await b.close()
            await agent.stop()
            leaf.stop()
            onprem.stop()
            cloud.stop()
