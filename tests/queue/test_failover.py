"""Failover: kill the leader's nats-server and the leader process during a stream of submissions.

A 3-node NATS cluster (R3 streams), two queue instances in subprocesses and two
stub trainers; a standby must take over within 10 s and every submitted job
must run exactly once to completion.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from pathlib import Path

import msgspec
import nats.errors
import pytest

from foto3d.libs.bus.connection import connect
from foto3d.proto.api import ServiceError
from foto3d.proto.jobs import LIST, SUBMIT, JobsList, JobsQuery, SubmitRequest, job_id_for
from foto3d.services.queue.lease import KEY, LeaseHolder
from foto3d.services.queue.topology import LEADER_LEASE
from testkit.cluster import connections, provision_r3, start_cluster, start_queue_ready
from testkit.trainer_stub import StubTrainer
from testkit.waiting import eventually

JOBS = 40


@pytest.mark.timeout(90)
async def test_standby_takes_over_and_every_job_runs_once(tmp_path: Path, dataset: Path) -> None:
    servers = start_cluster(tmp_path / "nats")
    urls = [s.client_url for s in servers]
    procs = []
    bus = await connect(urls, "test")
    trainers = [StubTrainer(bus, f"t{i}", work_s=0.05) for i in range(2)]
    try:
        await provision_r3(bus)
        kv = await bus.js.key_value(LEADER_LEASE.bucket)

        async def holder() -> str | None:
            try:
                entry = await asyncio.wait_for(kv.get(KEY), 2.0)
                return msgspec.json.decode(entry.value or b"", type=LeaseHolder).instance
            except (TimeoutError, nats.errors.Error, msgspec.DecodeError):
                return None

        first = await start_queue_ready(urls, tmp_path / "qa", tmp_path / "qa.log")
        procs.append(first)
        try:
            leader = await eventually(holder, "a queue leader", 20)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n" + (tmp_path / "qa.log").read_text()[-2000:]) from None
        home = next(s for s in servers if connections(s, "foto3d-queue") == 1)
        procs.append(await start_queue_ready(urls, tmp_path / "qb", tmp_path / "qb.log"))
        for t in trainers:
            t.start()

        request_ids = [f"rig-req-{i:03d}" for i in range(JOBS)]
        killed_at: list[float] = []

        async def submit_all() -> None:
            for i, rid in enumerate(request_ids):
                if i == JOBS // 3:
                    killed_at.append(time.monotonic())
                    home.kill()
                    first.send_signal(signal.SIGKILL)
                req = SubmitRequest(object_id=f"acme-item-{i:03d}", dataset=str(dataset), request_id=rid)
                while True:  # a rig resends with the same request id until it has an answer
                    try:
                        await bus.call(SUBMIT, req, timeout=3)
                        break
                    except (TimeoutError, nats.errors.Error, ServiceError):
                        pass
                    await asyncio.sleep(0.3)
                await asyncio.sleep(0.05)

        submitting = asyncio.create_task(submit_all())
        await eventually(lambda: killed_at, "the leader killed")

        async def new_leader() -> str | None:
            now = await holder()
            return now if now not in (None, leader) else None

        now_leader = await eventually(
            new_leader, "a standby to take over", 15 - (time.monotonic() - killed_at[0])
        )
        takeover = time.monotonic() - killed_at[0]
        assert now_leader != leader
        assert takeover <= 10.0, f"takeover took {takeover:.1f} s"
        await asyncio.wait_for(submitting, 30)

        expected = {job_id_for(r) for r in request_ids}

        async def finished() -> JobsList | None:
            listed = await bus.call(LIST, JobsQuery(limit=1000), timeout=5)
            return listed if listed.counts.get("succeeded") == JOBS else None

        listed = await eventually(finished, "every job succeeded", 30)
        assert {j.job_id for j in listed.jobs} == expected
        runs = Counter(job_id for t in trainers for job_id, _ in t.ran)
        assert set(runs) == expected
        assert [j for j, n in runs.items() if n != 1] == []
    finally:
        for t in trainers:
            await t.stop()
        await bus.close()
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except Exception:
                p.kill()
        for s in servers:
            s.stop()
