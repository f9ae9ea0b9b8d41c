"""Queue throughput, submit-to-start latency, and failover takeover time.

1. One nats-server, one queue instance (``foto3d serve queue`` in a subprocess),
   4 no-op trainers: N submissions over request/reply from C concurrent
   submitters; prints jobs/s and submit-to-start latency p50/p99.
2. A 3-node cluster (R3), two queue instances, 4 no-op trainers: the leader's
   nats-server and the leader process are killed a third of the way through M
   submissions; prints the takeover time and lost/duplicated jobs.

Run: .venv/bin/python bench/bench_queue.py [--jobs 1000] [--concurrency 4] [--failover-jobs 200]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import msgspec
import nats.errors

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from foto3d.app.topology import assemble
from foto3d.libs.bus.connection import Bus, connect
from foto3d.libs.bus.topology import provision
from foto3d.libs.nats_server import NatsServer
from foto3d.proto import subjects
from foto3d.proto.api import ServiceError
from foto3d.proto.jobs import LIST, SUBMIT, JobsQuery, SubmitRequest, TrainOptions, WorkItem, job_id_for
from foto3d.services.queue.lease import KEY, LeaseHolder
from foto3d.services.queue.topology import LEADER_LEASE
from testkit.cluster import connections, provision_r3, start_cluster, start_queue, start_queue_ready
from testkit.trainer_stub import StubTrainer


def make_dataset(root: Path) -> Path:
    d = root / "dataset"
    (d / "images").mkdir(parents=True)
    (d / "images" / "frame_00000.jpg").write_bytes(b"\xff\xd8")
    return d


async def wait_leader(bus: Bus, timeout: float = 30.0) -> str:
    kv = await bus.js.key_value(LEADER_LEASE.bucket)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            entry = await asyncio.wait_for(kv.get(KEY), 2.0)
            return msgspec.json.decode(entry.value or b"", type=LeaseHolder).instance
        except (TimeoutError, nats.errors.Error, msgspec.DecodeError):
            await asyncio.sleep(0.1)
    raise RuntimeError("no queue leader")


async def submit_with_retry(bus: Bus, req: SubmitRequest) -> float:
    """Send until accepted (same request id each time); returns when it was first sent."""
    first = time.time()
    while True:
        try:
            await bus.call(SUBMIT, req, timeout=3)
            return first
        except (TimeoutError, nats.errors.Error, ServiceError):
            pass
        await asyncio.sleep(0.2)


async def wait_done(bus: Bus, n: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            listed = await bus.call(LIST, JobsQuery(limit=1), timeout=5)
            if listed.counts.get("succeeded", 0) >= n:
                return
        except (TimeoutError, nats.errors.Error):
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError(f"jobs did not finish within {timeout} s")


async def throughput(root: Path, jobs: int, concurrency: int, rate: float, direct: bool = False) -> None:
    """``direct``: the baseline, WorkItems published straight to WORK with no queue in between."""
    server = NatsServer(store_dir=root / "nats").start()
    bus = await connect([server.client_url], "bench")
    await provision(bus.js, assemble())
    queue = None if direct else start_queue([server.client_url], root / "q", root / "q.log", replicas=1)
    trainers = [StubTrainer(bus, f"t{i}") for i in range(4)]
    try:
        if not direct:
            await wait_leader(bus)
        dataset = make_dataset(root)
        await asyncio.sleep(0.5)
        for t in trainers:
            t.start()
        sent: dict[str, float] = {}
        todo = list(range(jobs))
        t_start = time.time()
        next_i = iter(range(jobs))

        async def submitter() -> None:
            while todo:
                todo.pop()
                i = next(next_i)
                if rate:
                    # Paced: the latency is the queue's, not a backlog behind busy trainers.
                    await asyncio.sleep(max(0.0, t_start + i / rate - time.time()))
                if direct:
                    jid = job_id_for(f"b{i}")
                    item = WorkItem(
                        job_id=jid,
                        object_id=f"bench-item-{i:04d}",
                        dataset=str(dataset),
                        attempt=1,
                        options=TrainOptions(),
                    )
                    sent[jid] = time.time()
                    await bus.publish(subjects.work_train("normal"), item, msg_id=f"{jid}:1")
                    continue
                req = SubmitRequest(object_id=f"bench-item-{i:04d}", dataset=str(dataset), request_id=f"b{i}")
                sent[job_id_for(f"b{i}")] = await submit_with_retry(bus, req)

        t0 = time.time()
        await asyncio.gather(*(submitter() for _ in range(concurrency)))
        submitted = time.time() - t0
        if direct:
            while sum(len(t.ran) for t in trainers) < jobs:
                await asyncio.sleep(0.01)
        else:
            await wait_done(bus, jobs, 120)
        elapsed = time.time() - t0
        started = {j: ts for t in trainers for j, ts in t.started_at.items()}
        lat = sorted((started[j] - sent[j]) * 1000 for j in sent)
        q = statistics.quantiles(lat, n=100)
        pace = f"paced at {rate:g}/s" if rate else "as fast as they can"
        what = "baseline, WorkItems straight to WORK (no queue)" if direct else "through the queue"
        print(f"{what}: {jobs} jobs, {concurrency} concurrent submitters {pace}, 4 no-op trainers")
        print(f"  submitted in {submitted:.2f} s ({jobs / submitted:.0f} submissions/s)")
        print(f"  all succeeded in {elapsed:.2f} s: {jobs / elapsed:.0f} jobs/s")
        print(f"  submit-to-start latency: p50 {q[49]:.1f} ms, p99 {q[98]:.1f} ms, max {lat[-1]:.1f} ms")
    finally:
        for t in trainers:
            await t.stop()
        await bus.close()
        if queue is not None:
            queue.terminate()
            queue.wait(10)
        server.stop()


async def failover(root: Path, jobs: int) -> None:
    servers = start_cluster(root / "cluster")
    urls = [s.client_url for s in servers]
    bus = await connect(urls, "bench")
    procs = []
    trainers = [StubTrainer(bus, f"t{i}", work_s=0.02) for i in range(4)]
    try:
        await provision_r3(bus)
        first = await start_queue_ready(urls, root / "qa", root / "qa.log")
        procs.append(first)
        leader = await wait_leader(bus)
        home = next(s for s in servers if connections(s, "foto3d-queue") == 1)
        procs.append(await start_queue_ready(urls, root / "qb", root / "qb.log"))
        dataset = make_dataset(root)
        for t in trainers:
            t.start()
        ids = [f"f{i}" for i in range(jobs)]
        killed_at = blocked = 0.0
        kv = await bus.js.key_value(LEADER_LEASE.bucket)
        took_over: list[float] = []

        async def watch() -> None:
            while True:
                try:
                    entry = await asyncio.wait_for(kv.get(KEY), 1.0)
                    if msgspec.json.decode(entry.value or b"", type=LeaseHolder).instance != leader:
                        took_over.append(time.monotonic())
                        return
                except (TimeoutError, nats.errors.Error, msgspec.DecodeError):
                    pass
                await asyncio.sleep(0.05)

        watcher: asyncio.Task[None] | None = None
        for i, rid in enumerate(ids):
            if i == jobs // 3:
                killed_at = time.monotonic()
                home.kill()
                first.send_signal(signal.SIGKILL)
                watcher = asyncio.create_task(watch())
            req = SubmitRequest(object_id=f"bench-item-{i:04d}", dataset=str(dataset), request_id=rid)
            await submit_with_retry(bus, req)
            if i == jobs // 3:
                blocked = time.monotonic() - killed_at
        assert watcher is not None
        await asyncio.wait_for(watcher, 30)
        takeover = took_over[0] - killed_at
        await wait_done(bus, jobs, 120)
        runs = Counter(j for t in trainers for j, _ in t.ran)
        expected = {job_id_for(r) for r in ids}
        lost = len(expected - set(runs))
        dup = sum(1 for n in runs.values() if n > 1)
        print(
            f"failover: {jobs} submissions, 3-node cluster (R3), leader server + process SIGKILLed at {jobs // 3}"
        )
        print(f"  new leader holds the lease {takeover:.1f} s after the kill (lease TTL 5 s)")
        print(f"  first submission after the kill accepted after {blocked:.1f} s")
        print(f"  lost jobs {lost}, duplicated jobs {dup}")
    finally:
        for t in trainers:
            await t.stop()
        await bus.close()
        for p in procs:
            if p.poll() is None:
                p.terminate()
                p.wait(10)
        for s in servers:
            s.stop()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--rate", type=float, default=0.0, help="submissions per second (0 = unpaced)")
    ap.add_argument("--failover-jobs", type=int, default=200, help="0 = skip the failover part")
    ap.add_argument("--only-failover", action="store_true", help="skip the throughput part")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if not args.only_failover:
            await throughput(Path(tmp) / "b", args.jobs, args.concurrency, args.rate, direct=True)
            await throughput(Path(tmp) / "t", args.jobs, args.concurrency, args.rate)
        if args.failover_jobs:
            await failover(Path(tmp) / "f", args.failover_jobs)


if __name__ == "__main__":
    asyncio.run(main())
