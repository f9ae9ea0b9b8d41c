"""One trace per job, read back over OTLP/HTTP from services running as separate processes.

The queue and a trainer (fake ``ns-*``) run as ``foto3d serve`` processes exporting to an
OTLP/HTTP receiver the test starts. The first attempt fails in training and the retry
succeeds: the retry is dispatched from the queue's retry loop, outside any span, which is
where a work item without the job's trace context used to start a new trace.
"""

from __future__ import annotations

import subprocess
from collections.abc import Awaitable, Iterator
from pathlib import Path

import aiohttp
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from foto3d.libs.bus.connection import Bus, connect
from foto3d.libs.config import Settings
from foto3d.libs.nats_server import NatsServer
from foto3d.libs.tracing.job import CUSTOMER, JOB_ID, OBJECT_ID, STEP, trace_id_of
from foto3d.libs.tracing.setup import setup_tracing
from foto3d.proto.gateway import TOKENS_ISSUE, CredentialKind, IssueRequest
from foto3d.proto.jobs import GET, SUBMIT, JobRef, JobSucceeded, SubmitRequest, TrainOptions
from foto3d.proto.objects import (
    CUSTOMER_ADD,
    PUBLISH,
    REGISTER,
    REVIEW,
    SHOW,
    STATUS,
    Checklist,
    CustomerAdd,
    Decision,
    LiveStatus,
    ObjectRef,
    RegisterObject,
    ReviewRequest,
    StatusRequest,
)
from testkit.cluster import start_queue_ready
from testkit.identities import creds_for
from testkit.otlp import OtlpReceiver
from testkit.running import running_services
from testkit.signin import staff_cookie
from testkit.waiting import eventually
from tests.test_e2e import start_trainer
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
        await otlp.wait_for_steps(reply.job_id, 2, TRAINER_STEPS)
        # The job's record (and so its page) names the trace.
        detail = await bus.call(GET, JobRef(job_id=reply.job_id))

        # Every trainer span hangs off a span of the same trace (no orphan roots on the trainer
        # side). Each process exports in batches, so a parent may come a batch after its child.
        def orphans() -> list[str]:
            ids = {s.span_id for s in otlp.spans}
            return [
                f"{s.name} (attempt {s.attributes.get('foto3d.attempt')})"
                for s in otlp.of(JOB_ID, reply.job_id)
                if s.service == "foto3d-trainer" and s.parent_id not in ids
            ]

        await eventually(lambda: not orphans(), "every trainer span's parent", timeout=30)

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
    submit = [s for s in spans if s.attributes.get(STEP) == "submit"]
    assert len(submit) == 1
    assert not orphans(), "trainer spans whose parent the trace does not hold"


# -- the object's steps past training ---------------------------------------------------------

OBJECT_STEPS = {"approve", "publish", "publish-upload", "token-issue", "model-fetch", "status"}


@pytest.fixture
def memory_spans() -> InMemorySpanExporter:
    """The spans of the services running in this process (the test's own provider's exporter)."""
    setup_tracing("test")
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider), provider
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


def _attrs(span: ReadableSpan) -> dict[str, object]:
    return dict(span.attributes or {})


async def test_the_steps_past_training_join_the_objects_trace(
    settings: Settings,
    bus: Bus,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    memory_spans: InMemorySpanExporter,
    procs: list[subprocess.Popen[bytes]],
) -> None:
    """Register → train (a trainer process) → approve → publish → a key → a model fetch →
    disabled → the refused fetch: every step after training is a span in the job's trace,
    with the object, customer and job as attributes; registration starts the object's first."""
    for var in ("FOTO3D_SMTP_URL", "FOTO3D_ARTIFACT_STORE", "FOTO3D_ALERT_TO", "FOTO3D_ALERT_WEBHOOK"):
        monkeypatch.delenv(var, raising=False)
    settings.raw["token_gateway"] = {"port": 0}
    assert settings.nats_urls
    staff = await connect(bus_url := settings.nats_urls[0], "staff-test", creds=creds_for("staff"))
    try:
        async with running_services(settings, ["catalog", "queue", "publisher", "token_gateway"]) as rt:
            await staff.call(CUSTOMER_ADD, CustomerAdd(slug="acme", name="Acme"))
            oid = (
                await staff.call(REGISTER, RegisterObject(customer="acme", display_name="Oak chair"))
            ).object_id
            reply = await staff.call(
                SUBMIT,
                SubmitRequest(
                    object_id=oid,
                    dataset=str(make_dataset(tmp_path / "ds")),
                    options=TrainOptions(steps=100, formats=["ply"], reduce=False),
                ),
                timeout=20,
            )
            procs.append(start_trainer(bus_url, tmp_path / "trainer", fake_env()))

            async def in_review() -> bool:
                return (await staff.call(SHOW, ObjectRef(object_id=oid))).stage == "in_review"

            await eventually(in_review, "training with the fake nerfstudio", timeout=90)
            everything = Checklist(training_quality=True, alignment=True, manual_adjustments=True)
            await staff.call(
                REVIEW, ReviewRequest(object_id=oid, decision=Decision.APPROVED, checklist=everything)
            )
            await staff.call(PUBLISH, ObjectRef(object_id=oid), timeout=60)
            issued = await staff.call(
                TOKENS_ISSUE, IssueRequest(customer="acme", kind=CredentialKind.SECRET, models=[oid])
            )
            gateway = next(s for s in rt.services if s.name == "token_gateway").health().extra["listener"]
            auth = {"Authorization": f"Bearer {issued.token}"}
            async with aiohttp.ClientSession() as http:

                async def fetched() -> int:
                    async with http.get(f"{gateway}/v1/models/{oid}", headers=auth) as resp:
                        return resp.status

                await eventually(lambda: _is(fetched(), 200), "the gateway to serve the published model")
                await staff.call(STATUS, StatusRequest(object_id=oid, status=LiveStatus.DISABLED))
                await eventually(lambda: _is(fetched(), 404), "the gateway to refuse the disabled model")
            detail = await staff.call(GET, JobRef(job_id=reply.job_id))
            # The object's page names its trace (to look it up in the tracing backend).
            async with (
                aiohttp.ClientSession(cookies=await staff_cookie(settings)) as http,
                http.get(f"{rt.http_url}/objects/{oid}") as resp,
            ):
                assert resp.status == 200
                page = await resp.text()
    finally:
        await staff.close()

    trace_id = trace_id_of(detail.job.traceparent)
    assert f'<span class="mono trace-id">{trace_id}</span>' in page
    spans = [s for s in memory_spans.get_finished_spans() if _attrs(s).get(OBJECT_ID) == oid]
    in_trace = [s for s in spans if s.context is not None and format(s.context.trace_id, "032x") == trace_id]
    steps = {_attrs(s).get(STEP) for s in in_trace}
    assert steps >= OBJECT_STEPS, f"steps missing from the object's trace: {OBJECT_STEPS - steps}"
    for s in in_trace:
        attrs = _attrs(s)
        if attrs.get(STEP) in OBJECT_STEPS:
            assert attrs.get(CUSTOMER) == "acme", (s.name, attrs)
        if attrs.get(STEP) in OBJECT_STEPS - {"token-issue", "model-fetch"}:
            assert attrs.get(JOB_ID) == reply.job_id, (s.name, attrs)
    fetches = [_attrs(s) for s in in_trace if _attrs(s).get(STEP) == "model-fetch"]
    assert any("foto3d.refused" not in a for a in fetches), "a served fetch"
    assert any("disabled" in str(a.get("foto3d.refused", "")) for a in fetches), "the refused fetch"
    # The upload is the catalog's publish span's child, across the bus.
    by_id = {s.context.span_id: s for s in memory_spans.get_finished_spans() if s.context is not None}
    upload = next(s for s in in_trace if _attrs(s).get(STEP) == "publish-upload")
    parents = []
    node: ReadableSpan | None = upload
    while node is not None and node.parent is not None:
        node = by_id.get(node.parent.span_id)
        parents.append(_attrs(node).get(STEP) if node is not None else None)
    assert "publish" in parents, parents
    registered = [s for s in spans if _attrs(s).get(STEP) == "register"]
    assert len(registered) == 1 and _attrs(registered[0]).get(CUSTOMER) == "acme"


async def _is(status: Awaitable[int], want: int) -> bool:
    return await status == want
