"""The queue against a real nats-server: submissions, state machine, retries, dead letters."""

from __future__ import annotations

from pathlib import Path

import msgspec
import nats.errors
import pytest
from nats.aio.msg import Msg

from foto3d.libs.bus.connection import Bus
from foto3d.libs.config import Settings
from foto3d.proto.api import BAD_REQUEST, CONFLICT, ERROR_CODE_HEADER, ERROR_HEADER, NOT_FOUND, ServiceError
from foto3d.proto.jobs import (
    CANCEL,
    GET,
    LIST,
    REQUEUE,
    SUBMIT,
    JobDetail,
    JobRef,
    JobsList,
    JobsQuery,
    JobState,
    SubmitReply,
    SubmitRequest,
    TrainOptions,
    job_id_for,
)
from testkit.running import running_services
from testkit.trainer_stub import StubTrainer
from testkit.waiting import eventually


async def submit(bus: Bus, object_id: str, dataset: Path | str, **kw: object) -> SubmitReply:
    req = msgspec.convert({"object_id": object_id, "dataset": str(dataset), **kw}, SubmitRequest)

    async def attempt() -> SubmitReply | None:
        try:
            return await bus.call(SUBMIT, req, timeout=10)
        except nats.errors.NoRespondersError:
            # Rarely, right after start, the endpoints are not routable yet; a client retries.
            return None

    reply: SubmitReply = await eventually(attempt, "the queue's submit endpoint", timeout=5)
    return reply


async def job(bus: Bus, job_id: str) -> JobDetail:
    return await bus.call(GET, JobRef(job_id=job_id))


async def state_is(bus: Bus, job_id: str, state: JobState) -> bool:
    try:
        d = await job(bus, job_id)
    except ServiceError as exc:
        if exc.code == NOT_FOUND:  # not recorded yet
            return False
        raise
    return d.job.state == state


async def test_submit_runs_to_success_with_timeline(bus: Bus, settings: Settings, dataset: Path) -> None:
    async with running_services(settings, ["queue"], http=False):
        trainer = StubTrainer(bus, "t1")
        trainer.start()
        try:
            reply = await submit(bus, "acme-chair-001", dataset, options={"steps": 500})
            assert reply.job_id and not reply.duplicate
            await eventually(lambda: state_is(bus, reply.job_id or "", JobState.SUCCEEDED), what="success")
            d = await job(bus, reply.job_id)
            assert d.job is not None and d.job.options == TrainOptions(steps=500)
            assert [t.type for t in d.timeline] == ["job.queued", "job.started", "job.succeeded"]
            assert trainer.ran == [(reply.job_id, 1)]
            again = await submit(bus, "acme-chair-001", dataset, options={"steps": 500})
            assert again.duplicate and again.job_id == reply.job_id
            other = await submit(bus, "acme-chair-001", dataset, options={"steps": 600})
            assert not other.duplicate and other.job_id != reply.job_id
        finally:
            await trainer.stop()


@pytest.mark.parametrize(
    ("object_id", "dataset_kind", "options", "expected"),
    [
        ("Acme Chair", "good", {}, "naming standard"),
        ("acme-chair-002", "missing", {}, "does not exist"),
        ("acme-chair-002", "empty", {}, "no transforms.json"),
        ("acme-chair-002", "good", {"steps": 5}, "option --steps"),
        ("acme-chair-002", "good", {"reduce_keep": 1.5}, "option --reduce-keep"),
    ],
)
async def test_invalid_submissions_are_refused_readably(
    bus: Bus,
    settings: Settings,
    dataset: Path,
    tmp_path: Path,
    object_id: str,
    dataset_kind: str,
    options: dict[str, object],
    expected: str,
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    path = {"good": dataset, "missing": tmp_path / "nope", "empty": empty}[dataset_kind]
    body = msgspec.json.encode({"object_id": object_id, "dataset": str(path), "options": options})
    async with running_services(settings, ["queue"], http=False):
        msg = await _raw_request(bus, SUBMIT.subject, body)
    # The micro error convention: no body, the reason in the headers.
    headers = msg.headers or {}
    assert headers.get(ERROR_CODE_HEADER) == BAD_REQUEST and not msg.data
    error = headers.get(ERROR_HEADER, "")
    assert expected in error, error
    assert "Expected" not in error


async def test_vip_is_taken_before_normal(bus: Bus, settings: Settings, tmp_path: Path) -> None:
    async with running_services(settings, ["queue"], http=False):
        ids: dict[str, str] = {}
        for i, prio in enumerate(["normal", "normal", "vip", "normal", "vip"]):
            d = tmp_path / f"ds{i}"
            d.mkdir()
            (d / "transforms.json").write_text("{}")
            r = await submit(bus, f"acme-item-{i:03d}", d, priority=prio)
            assert r.job_id
            ids[r.job_id] = prio
        trainer = StubTrainer(bus, "t1")
        trainer.start()
        try:
            await eventually(lambda: _async(len(trainer.ran) == 5), what="5 jobs run")
        finally:
            await trainer.stop()
        order = [ids[j] for j, _ in trainer.ran]
        assert order == ["vip", "vip", "normal", "normal", "normal"]


async def _async(value: bool) -> bool:
    return value


async def test_retries_with_backoff_then_dead_letter(bus: Bus, settings: Settings, dataset: Path) -> None:
    async with running_services(settings, ["queue"], http=False):
        trainer = StubTrainer(bus, "t1", mode="fail")
        trainer.start()
        dead_sub = await bus.js.pull_subscribe("f3d.dead.work", durable="test-dead", stream="DEAD")
        try:
            reply = await submit(bus, "acme-chair-001", dataset)
            jid = reply.job_id or ""
            await eventually(lambda: state_is(bus, jid, JobState.DEAD), what="dead")
        finally:
            await trainer.stop()
        d = await job(bus, jid)
        assert trainer.ran == [(jid, 1), (jid, 2), (jid, 3)]
        assert d.job is not None and d.job.error and "failed 3 of 3 attempts" in d.job.error
        types = [t.type for t in d.timeline]
        assert types == [
            "job.queued",
            "job.started",
            "job.failed",
            "job.retried",
            "job.queued",
            "job.started",
            "job.failed",
            "job.retried",
            "job.queued",
            "job.started",
            "job.failed",
            "job.dead",
        ]
        # Backoff: 0.2 s before the 2nd attempt, 0.4 s before the 3rd.
        starts = [t.ts for t in d.timeline if t.type == "job.started"]
        assert starts[1] - starts[0] >= 0.2 and starts[2] - starts[1] >= 0.4
        msgs = await dead_sub.fetch(1, timeout=5)
        await dead_sub.unsubscribe()
        assert msgs[0].headers and msgs[0].headers["F3D-Job-Id"] == jid
        assert "failed 3 of 3" in msgs[0].headers["F3D-Reason"]


async def test_max_deliver_advisory_makes_the_job_dead(bus: Bus, settings: Settings, dataset: Path) -> None:
    async with running_services(settings, ["queue"], http=False):
        dying = StubTrainer(bus, "dying", mode="nak")
        dying.start()
        try:
            reply = await submit(bus, "acme-chair-001", dataset)
            jid = reply.job_id or ""
            await eventually(lambda: state_is(bus, jid, JobState.DEAD), what="dead after MaxDeliver")
        finally:
            await dying.stop()
        d = await job(bus, jid)
        assert d.job is not None and d.job.error and "delivered 5 times" in d.job.error
        info = await bus.js.stream_info("WORK")
        assert info.state.messages == 0  # the exhausted work message is removed
        dead = await bus.js.get_last_msg("DEAD", "f3d.dead.work")
        assert dead.headers and dead.headers["F3D-Job-Id"] == jid


async def test_cancel_and_requeue(bus: Bus, settings: Settings, dataset: Path) -> None:
    async with running_services(settings, ["queue"], http=False):
        reply = await submit(bus, "acme-chair-001", dataset)
        jid = reply.job_id or ""
        res = await bus.call(CANCEL, JobRef(job_id=jid, reason="wrong lens"))
        assert res.state == JobState.CANCELLED
        info = await bus.js.stream_info("WORK")
        assert info.state.messages == 0  # its waiting work was withdrawn
        with pytest.raises(ServiceError, match="already cancelled") as refused:
            await bus.call(CANCEL, JobRef(job_id=jid))
        assert refused.value.code == CONFLICT
        trainer = StubTrainer(bus, "t1")
        trainer.start()
        try:
            res = await bus.call(REQUEUE, JobRef(job_id=jid))
            assert res.state == JobState.QUEUED
            await eventually(lambda: state_is(bus, jid, JobState.SUCCEEDED), what="requeued job succeeds")
        finally:
            await trainer.stop()
        assert trainer.ran == [(jid, 2)]
        with pytest.raises(ServiceError, match="only dead, failed or cancelled"):
            await bus.call(REQUEUE, JobRef(job_id=jid))


async def test_restart_keeps_every_job(bus: Bus, settings: Settings, dataset: Path) -> None:
    ids: list[str] = []
    async with running_services(settings, ["queue"], http=False):
        for i in range(5):
            r = await submit(bus, f"acme-chair-{i:03d}", dataset)
            assert r.job_id
            ids.append(r.job_id)
    # A fresh data folder too: the second instance rebuilds everything from JOB_EVENTS.
    fresh = Settings.load(data_dir=settings.data_dir / "other", nats=",".join(settings.nats_urls or []))
    for s in (settings, fresh):
        async with running_services(s, ["queue"], http=False):
            listed = await _list(bus)
            assert sorted(j.job_id for j in listed.jobs) == sorted(ids)
            assert listed.counts == {"queued": 5}


async def _list(bus: Bus) -> JobsList:
    async def attempt() -> JobsList | None:
        try:
            return await bus.call(LIST, JobsQuery())
        except nats.errors.NoRespondersError:
            return None  # the restarted instance's endpoints may take a moment to be routable

    listed: JobsList = await eventually(attempt, "the queue's list endpoint", timeout=5)
    return listed


async def test_durable_submissions_from_the_stream(bus: Bus, settings: Settings, dataset: Path) -> None:
    """A rig publishes to SUBMISSIONS while no queue runs; the leader takes it later."""
    good = SubmitRequest(object_id="acme-chair-001", dataset=str(dataset), request_id="rig7-0001")
    bad = SubmitRequest(object_id="acme-chair-002", dataset="/nowhere/at/all", request_id="rig7-0002")
    for req in (good, good, bad):  # the resend of `good` is dropped by its Nats-Msg-Id
        await bus.publish("f3d.jobs.submit", req, msg_id=req.request_id)
    jid = job_id_for("rig7-0001")
    async with running_services(settings, ["queue"], http=False):
        await eventually(lambda: state_is(bus, jid, JobState.QUEUED), what="job from the stream")
        dead = await bus.js.get_last_msg("DEAD", "f3d.dead.submissions")
        assert dead.headers and "does not exist" in dead.headers["F3D-Reason"]
        listed = await _list(bus)
        assert [j.job_id for j in listed.jobs] == [jid]
        assert listed.jobs[0].request_id == "rig7-0001"


async def _raw_request(bus: Bus, subject: str, body: bytes) -> Msg:
    """A bare request, so the test sees the micro error headers themselves. Like ``Bus.call``, it
    allows the endpoint a moment to be reachable right after start (a rare "no responders" was seen
    here on an idle machine; the cause is not understood yet)."""

    async def attempt() -> Msg | None:
        try:
            # Signed as Bus.request signs, so the management endpoint gets as far as the body.
            headers = bus.signer.headers(subject, body) if bus.signer else None
            return await bus.nc.request(subject, body, timeout=10, headers=headers)
        except nats.errors.NoRespondersError:
            return None

    reply: Msg = await eventually(attempt, f"a responder on {subject}", timeout=5)
    return reply
