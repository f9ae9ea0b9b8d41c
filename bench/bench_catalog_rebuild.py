"""Catalog rebuild from the event streams: how long for N objects.

One nats-server; N objects' histories are published as the system would (per object:
its registration and one training job's queued, started and succeeded events), then a
new, empty catalog database is filled from OBJECT_EVENTS and JOB_EVENTS by the code the
catalog runs at start and `foto3d objects rebuild` uses. Prints events, objects, seconds
and rates.

Run: PYTHONPATH=$PWD .venv/bin/python bench/bench_catalog_rebuild.py [--objects 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from foto3d.app.topology import assemble
from foto3d.libs.bus.connection import Bus, connect
from foto3d.libs.bus.topology import provision
from foto3d.libs.nats_server import NatsServer
from foto3d.proto import subjects
from foto3d.proto.jobs import JobQueued, JobStarted, JobSucceeded, Priority, TrainOptions
from foto3d.proto.objects import ObjectRegistered
from foto3d.services.catalog.rebuild import rebuild
from foto3d.services.catalog.store import CatalogStore
from testkit.servers import free_port

CUSTOMERS = ("acme", "globex", "initech", "umbrella")


async def fill(bus: Bus, n: int) -> int:
    t0 = time.time() - n
    sent = 0

    async def one(i: int) -> None:
        customer = CUSTOMERS[i % len(CUSTOMERS)]
        oid = f"{customer}-item-{i:05d}"
        t = t0 + i
        await bus.publish(
            subjects.object_events(oid),
            ObjectRegistered(
                event_id=f"registered-{oid}",
                object_id=oid,
                ts=t,
                actor="bench",
                customer=customer,
                display_name=f"Item {i}",
                slug=f"item-{i:05d}",
                serial=1,
            ),
            msg_id=f"registered-{oid}",
        )
        job = f"job-{i:05d}"
        subject = subjects.job_events(job)
        events = (
            JobQueued(
                job_id=job,
                object_id=oid,
                ts=t + 0.1,
                actor="rig-1",
                dataset=f"s3://datasets/{oid}",
                priority=Priority.NORMAL,
                options=TrainOptions(),
            ),
            JobStarted(job_id=job, object_id=oid, ts=t + 0.2, trainer="t1", host="gpu-1"),
            JobSucceeded(job_id=job, object_id=oid, ts=t + 0.3, artifacts=[], metrics={"psnr": 30.0}),
        )
        for k, ev in enumerate(events):
            await bus.publish(subject, ev, msg_id=f"{job}:{k}")

    for start in range(0, n, 200):
        await asyncio.gather(*(one(i) for i in range(start, min(n, start + 200))))
        sent += min(n, start + 200) - start
    return sent * 4


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        server = NatsServer(store_dir=root / "nats", port=free_port()).start()
        bus = await connect([server.client_url], "bench")
        try:
            await provision(bus.js, assemble())
            t = time.monotonic()
            events = await fill(bus, n)
            print(f"published {events} events for {n} objects in {time.monotonic() - t:.1f} s")
            store = await CatalogStore(root / "catalog.db").open()
            try:
                report = await rebuild(bus, store, root / "refs", root / "notes")
            finally:
                await store.close()
            total = report.object_events + report.job_events
            print(report.line())
            print(
                f"rebuild: {report.objects} objects in {report.seconds:.2f} s "
                f"({report.objects / report.seconds:,.0f} objects/s, {total / report.seconds:,.0f} events/s)"
            )
        finally:
            await bus.close()
            server.stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--objects", type=int, default=10_000)
    asyncio.run(main(ap.parse_args().objects))
