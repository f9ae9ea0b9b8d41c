"""What the queue's readers and the jobs API share: built once by the service, handed to both.

Queries are answered by every instance from its own job table; commands (cancel, requeue)
run on the leader, so the API holds the service's way to reach it, not the service.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from foto3d.libs.service import ServiceContext
from foto3d.proto.api import NOT_FOUND, Api, ServiceError
from foto3d.proto.jobs import JobActionReply, JobDetail, JobRef, JobsList, JobsQuery
from foto3d.services.queue.lease import LeaderLease
from foto3d.services.queue.store import JobStore

# Runs a job command on the leader (here when this instance leads, else forwarded);
# ServiceError UNAVAILABLE when no leader is reachable.
Command = Callable[[Api[JobRef, JobActionReply], JobRef], Awaitable[JobActionReply]]


@dataclass(frozen=True)
class QueueParts:
    """The collaborators of the queue's query endpoints and its JSON API.

    Invariants:

    - Built once per ``start()``, once the store is open, its tail follows the job events
      and the lease is started. Frozen: no field is replaced while the service runs.
    - ``store`` is this instance's projection of JOB_EVENTS; handlers only read it (every
      change is an event the leader publishes, applied by the tail).
    - ``lease`` is read only for who leads; handlers never claim, renew or release it.
    - ``command`` is the one way a handler changes a job: it goes to the leader whichever
      instance answers.
    - ``ctx`` is read at request time, never copied: the runtime learns the dashboard's
      address (``ctx.base_url``) only once its listener is up, after the service started.
    - Handlers open and close nothing here; the runtime stops the HTTP listener and the bus
      endpoints before it stops the service.
    """

    store: JobStore
    lease: LeaderLease
    command: Command
    ctx: ServiceContext

    async def list_jobs(self, q: JobsQuery) -> JobsList:
        jobs = await self.store.query([s.value for s in q.states], q.object_id, q.limit)
        leader = self.lease.leader.instance if self.lease.leader else None
        return JobsList(jobs=jobs, counts=await self.store.counts(), leader=leader)

    async def job_detail(self, ref: JobRef) -> JobDetail:
        job = await self.store.get(ref.job_id)
        if job is None:
            raise ServiceError(NOT_FOUND, f"no job {ref.job_id}")
        return JobDetail(job=job, timeline=await self.store.timeline(ref.job_id))
