"""A lone queue that loses its lease (a stall, a foreign write) claims it back by itself and runs what was submitted."""

from __future__ import annotations

from pathlib import Path

import msgspec

from foto3d.libs.bus.connection import Bus
from foto3d.libs.config import Settings
from foto3d.proto.jobs import JobState
from foto3d.services.queue.lease import KEY, LeaseHolder
from foto3d.services.queue.service import QueueService
from foto3d.services.queue.topology import LEADER_LEASE
from testkit.running import running_services
from testkit.trainer_stub import StubTrainer
from testkit.waiting import eventually
from tests.queue.test_queue import state_is, submit


async def test_a_lone_queue_that_lost_its_lease_leads_again_and_runs_the_job(
    bus: Bus, settings: Settings, dataset: Path
) -> None:
    async with running_services(settings, ["queue"], http=False) as rt:
        [svc] = rt.services
        assert isinstance(svc, QueueService)
        await eventually(lambda: svc.is_leader, "the queue to lead")
        trainer = StubTrainer(bus, "t1")
        trainer.start()
        try:
            # Someone else's write lands on the lease: the queue must step down, not lead beside it.
            kv = await bus.js.key_value(LEADER_LEASE.bucket)
            ghost = LeaseHolder(instance="ghost", host="elsewhere", since=0.0)
            await kv.put(KEY, msgspec.json.encode(ghost))
            await eventually(lambda: not svc.is_leader, "the queue to step down for the other holder")
            # The other holder is gone (its key deleted, as a stop does): nobody else is there to lead.
            await kv.delete(KEY)
            await eventually(lambda: svc.is_leader, "the queue to claim the lease back", timeout=15)
            reply = await submit(bus, "acme-chair-001", dataset)
            assert reply.job_id
            await eventually(
                lambda: state_is(bus, reply.job_id or "", JobState.SUCCEEDED),
                "the job to run after the re-claim",
            )
            assert trainer.ran == [(reply.job_id, 1)]
        finally:
            await trainer.stop()
