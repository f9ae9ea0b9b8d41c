"""One trace per job, read back over OTLP/HTTP from services running as separate processes.

The queue and a trainer (fake ``ns-*``) run as ``foto3d serve`` processes exporting to an
OTLP/HTTP receiver the test starts. The first attempt fails in training and the retry
succeeds: the retry is dispatched from the queue's retry loop, outside any span, which is
where a work item without the job's trace context used to start a new trace.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from foto3d.libs.bus.connection import Bus
from foto3d.libs.nats_server import NatsServer
from foto3d.libs.tracing.job import JOB_ID, OBJECT_ID, STEP, trace_id_of
from foto3d.proto.jobs import GET, SUBMIT, JobRef, JobSucceeded, SubmitRequest, TrainOptions
from testkit.cluster import start_queue_ready
from testkit.otlp import OtlpReceiver
from testkit.waiting import eventually
from tests.trainer.helpers import EventLog, fake_env, make_dataset, spawn_trainer

OID = "acme-chair-oak-001"
TRAINER_STEPS = {"preflight", "train", "export", "reduce", "upload"}


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for p in started:
        p.kill()
        p.wait(10)


async def test_one_job_is_one_trace_across_queue_trainer_and_a_retry(
    nats_server: NatsServer,
    bus: Bus,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    procs: list[subprocess.Popen[bytes]],
) -> None:
    otlp = OtlpReceiver()
    async with otlp.running():
        otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp.url, "OTEL_BSP_SCHEDULE_DELAY": "100"}
        for k, v in {**otel, "FOTO3D_QUEUE_BACKOFF_S": "0.2", "FOTO3D_QUEUE_MAX_ATTEMPTS": "3"}.items():
            monkeypatch.setenv(k, v)
        procs.append(
            await start_queue_ready([nats_server.client_url], tmp_path / "queue", tmp_path / "queue.log", 1)
        )
        env = fake_env({**otel, "FAKE_NS_FAIL_ONCE": f"train:{tmp_path / 'failed-once'}"})
        procs.append(spawn_trainer(nats_server.client_url, tmp_path / "trainer", env))

        req = SubmitRequest(
            object_id=OID,
            dataset=str(make_dataset(tmp_path / "ds")),
            options=TrainOptions(steps=100, formats=["ply"], reduce=False),
            request_id="trace-test-0001",
        )
        reply = await bus.call(SUBMIT, req, timeout=20)
        events = await EventLog.watch(bus, reply.job_id)
        # (wait_for gives up at the first failure; here the first attempt fails on purpose)
        await eventually(lambda: events.of(JobSucceeded), "the retry to succeed", timeout=90)

        def trainer_steps() -> set[object]:
            return {
                s.attributes[STEP]
                for s in otlp.of(JOB_ID, reply.job_id)
                if s.attributes.get("foto3d.attempt") == 2
            }

        await eventually(lambda: trainer_steps() >= TRAINER_STEPS, "the retry's step spans", timeout=30)
        # The job's record (and so its page) names the trace.
        detail = await bus.call(GET, JobRef(job_id=reply.job_id))

    spans = otlp.of(JOB_ID, reply.job_id)
    assert {s.trace_id for s in spans} == {spans[0].trace_id}, "the job's spans are not one trace"
    assert trace_id_of(detail.job.traceparent) == spans[0].trace_id
    by_service = {s.service for s in spans}
    assert {"foto3d-queue", "foto3d-trainer"} <= by_service
    assert all(s.attributes.get(OBJECT_ID) == OID for s in spans)
    attempts = {
        s.attributes.get("foto3d.attempt")
        for s in spans
        if s.name == "train" and s.service == "foto3d-trainer"
    }
    assert attempts >= {1, 2}, "both attempts' train steps are in the trace"
    failed = [
        s for s in spans if s.attributes.get(STEP) == "train" and s.attributes.get("foto3d.attempt") == 1
    ]
    assert failed and failed[0].error, "the failed attempt's train span is marked as an error"
    # Every trainer span hangs off a span of the same trace (no orphan roots on the trainer side).
    ids = {s.span_id for s in otlp.spans}
    submit = [s for s in spans if s.attributes.get(STEP) == "submit"]
    assert len(submit) == 1
    for s in spans:
        if s.service == "foto3d-trainer":
            assert s.parent_id in ids, f"{s.name} has a parent the trace does not hold"
