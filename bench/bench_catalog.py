"""Catalog benchmark: event ingest rate and list/filter latency on a large catalog.

Builds a catalog of ``--objects`` objects with about ``--events`` timeline events through the
store's batch ingest path (the same code the bus consumers call), then measures:

- ingest rate, against a baseline of plain ``executemany`` inserts of the same rows into a
  bare table in the same sqlite settings (what the dedupe + projection costs on top);
- ingest through the bus: ``--bus-events`` job events published to JetStream and drained by the
  catalog's ``PullConsumer`` into the store;
- p50/p95 latency of ``GET /api/objects`` with several filters and of the ``/objects`` HTML page
  (signed in), against ``GET /healthz`` of the same server as the baseline.

    .venv/bin/python bench/bench_catalog.py                      # 100,000 objects, 2,000,000 events
    .venv/bin/python bench/bench_catalog.py --objects 5000 --events 100000 --bus-events 20000
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp

from foto3d.app.registry import by_name
from foto3d.app.runtime import Runtime
from foto3d.app.topology import assemble
from foto3d.libs.auth import UserStore
from foto3d.libs.bus.connection import connect
from foto3d.libs.bus.consume import Delivery, PullConsumer
from foto3d.libs.bus.topology import ConsumerSpec, provision
from foto3d.libs.config import Settings
from foto3d.libs.nats_server import NatsServer
from foto3d.proto import subjects
from foto3d.proto.base import encode
from foto3d.proto.jobs import (
    Artifact,
    JobEvent,
    JobFailed,
    JobQueued,
    JobRetried,
    JobStarted,
    JobSucceeded,
    Priority,
    TrainOptions,
)
from foto3d.proto.objects import (
    Checklist,
    Decision,
    LiveStatus,
    ObjectCaptured,
    ObjectPublished,
    ObjectRegistered,
    ObjectReview,
    ObjectStatusChanged,
    PublishedFile,
)
from foto3d.services.catalog.projection import AnyEvent
from foto3d.services.catalog.store import CatalogStore

DAY = 86_400.0
CUSTOMERS = [f"cust{i:02d}" for i in range(50)]
NAMES = ["desk lamp", "arm chair", "vase", "sneaker", "handbag", "stool", "watch", "kettle", "teapot", "bike"]
OPTS = TrainOptions()
SHA = "0" * 64
CHECK = Checklist(training_quality=True, alignment=True, manual_adjustments=True)


def object_events(i: int, rng: random.Random, now: float) -> list[AnyEvent]:
    """One object's life: up to ~24 events, most objects get far, some stop early."""
    cust = CUSTOMERS[i % len(CUSTOMERS)]
    name = NAMES[(i // len(CUSTOMERS)) % len(NAMES)]
    slug = name.replace(" ", "-")
    serial = i // (len(CUSTOMERS) * len(NAMES)) + 1
    oid = f"{cust}-{slug}-{serial:03d}"
    t = now - rng.uniform(1, 365) * DAY
    evs: list[AnyEvent] = []

    def tick() -> float:
        nonlocal t
        t += rng.uniform(60, 3600)
        return t

    evs.append(ObjectRegistered(event_id=f"r-{i}", object_id=oid, ts=tick(), actor="ops", customer=cust,
                                display_name=name.title(), slug=slug, serial=serial))  # fmt: skip
    evs.append(
        ObjectCaptured(event_id=f"c-{i}", object_id=oid, ts=tick(), rig="rig-1", dataset=f"s3://d/{oid}")
    )
    art = [
        Artifact(
            kind="splat",
            format="ply",
            uri=f"s3://a/{oid}.ply",
            bytes=50_000_000,
            sha256=SHA,
            gaussians=500_000,
        )
    ]
    for j in range(2):
        job = f"j{i}x{j}"
        evs.append(
            JobQueued(
                job_id=job,
                object_id=oid,
                ts=tick(),
                dataset=f"s3://d/{oid}",
                priority=Priority.NORMAL,
                options=OPTS,
            )
        )
        evs.append(JobStarted(job_id=job, object_id=oid, ts=tick(), trainer="t", host="gpu-1"))
        evs.append(
            JobFailed(job_id=job, object_id=oid, ts=tick(), error="CUDA out of memory", will_retry=True)
        )
        evs.append(JobRetried(job_id=job, object_id=oid, ts=tick(), reason="retry"))
        evs.append(
            JobQueued(
                job_id=job,
                object_id=oid,
                ts=tick(),
                attempt=2,
                dataset=f"s3://d/{oid}",
                priority=Priority.NORMAL,
                options=OPTS,
            )
        )
        evs.append(JobStarted(job_id=job, object_id=oid, ts=tick(), attempt=2, trainer="t", host="gpu-2"))
        evs.append(
            JobSucceeded(
                job_id=job,
                object_id=oid,
                ts=tick(),
                attempt=2,
                artifacts=art,
                metrics={"gaussians_before": 2e6, "gaussians_after": 5e5},
            )
        )
        evs.append(ObjectReview(event_id=f"v-{i}-{j}", object_id=oid, ts=tick(), actor="rev", job_id=job,
                                decision=Decision.REJECTED if j == 0 else Decision.APPROVED, checklist=CHECK, comment="ok"))  # fmt: skip
    files = [PublishedFile(kind="viewer_config", format="json", key=f"models/{cust}/{oid}/v1/viewer.json",
                           url="https://cdn/x", bytes=1000, sha256=SHA, content_type="application/json")]  # fmt: skip
    evs.append(
        ObjectPublished(
            event_id=f"p-{i}",
            object_id=oid,
            ts=tick(),
            actor="rev",
            version=1,
            job_id=f"j{i}x1",
            live_url="https://cdn/x",
            files=files,
        )
    )
    for k, st in enumerate((LiveStatus.DEMO, LiveStatus.PRODUCTION, LiveStatus.TEST, LiveStatus.DISABLED)):
        evs.append(
            ObjectStatusChanged(event_id=f"s-{i}-{k}", object_id=oid, ts=tick(), actor="ops", status=st)
        )
    r = rng.random()
    keep = len(evs) if r < 0.6 else rng.randint(3, len(evs))  # 40% stop somewhere in the pipeline
    return evs[:keep]


def batches(objects: int, events: int, seed: int, size: int) -> Iterator[list[AnyEvent]]:
    """Objects' events, interleaved a little (as the two streams would), in batches of ``size``."""
    rng = random.Random(seed)
    now = time.time()
    per = max(1, events // objects)
    buf: list[AnyEvent] = []
    made = 0
    for i in range(objects):
        evs = object_events(i, rng, now)
        first = evs[0]
        assert isinstance(first, ObjectRegistered)  # every object's life starts with it
        oid = first.object_id
        while len(evs) < per:  # top up to the target density with status flips
            evs.append(ObjectStatusChanged(event_id=f"x-{i}-{len(evs)}", object_id=oid,
                                           ts=evs[-1].ts + 60, actor="ops", status=LiveStatus.DEMO))  # fmt: skip
        made += len(evs)
        buf.extend(evs)
        while len(buf) >= size:
            yield buf[:size]
            buf = buf[size:]
    if buf:
        yield buf


async def bench_ingest(db: Path, args: argparse.Namespace) -> dict[str, float]:
    store = await CatalogStore(db).open()
    n = 0
    busy = 0.0
    start = time.perf_counter()
    for batch in batches(args.objects, args.events, 1, args.batch):
        t0 = time.perf_counter()
        await store.ingest(batch)
        busy += time.perf_counter() - t0
        n += len(batch)
        if n % 200_000 < args.batch:
            print(f"  ingested {n:,} events ({n / busy:,.0f}/s)", file=sys.stderr)
    wall = time.perf_counter() - start
    # redelivery of the last batches adds nothing
    again = 0
    for k, batch in enumerate(batches(min(args.objects, 2000), min(args.events, 40_000), 1, args.batch)):
        again += await store.ingest(batch)
        if k > 5:
            break
    counts = await store.counts()
    await store.close()
    return {"events": n, "busy_s": busy, "wall_s": wall, "rate": n / busy, "redelivered_new": again,
            "objects": counts["objects"], "rows": counts["events"]}  # fmt: skip


def bench_baseline(tmp: Path, args: argparse.Namespace) -> float:
    """Plain executemany of the same number of timeline-sized rows into a bare table."""
    con = sqlite3.connect(tmp / "baseline.db")
    con.executescript("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                      "CREATE TABLE t (key TEXT, object_id TEXT, ts REAL, kind TEXT, actor TEXT,"
                      " summary TEXT, detail TEXT, job_id TEXT)")  # fmt: skip
    n: int = min(args.events, 500_000)
    rows = [(f"k{i}", f"obj-{i % 1000}", float(i), "trained", "rev", "trained: ply 47.7 MiB", '{"a":1}', None)
            for i in range(n)]  # fmt: skip
    t0 = time.perf_counter()
    for s in range(0, n, args.batch):
        con.executemany("INSERT INTO t VALUES (?,?,?,?,?,?,?,?)", rows[s : s + args.batch])
        con.commit()
    dt = time.perf_counter() - t0
    con.close()
    return n / dt


async def bench_bus(tmp: Path, nats_url: str, args: argparse.Namespace) -> dict[str, float]:
    """Job events through JetStream and the catalog's consumer into a fresh store."""
    bus = await connect([nats_url], "bench")
    await provision(bus.js, assemble())
    store = await CatalogStore(tmp / "bus.db").open()
    evs: list[JobEvent] = []
    i = 0
    while len(evs) < args.bus_events:
        oid = f"cust00-bus-{i:06d}"
        job = f"bus{i}"
        evs += [
            JobQueued(job_id=job, object_id=oid, ts=1.0, dataset="d", priority=Priority.NORMAL, options=OPTS),
            JobStarted(job_id=job, object_id=oid, ts=2.0, trainer="t", host="h"),
            JobSucceeded(job_id=job, object_id=oid, ts=3.0, artifacts=[]),
        ]
        i += 1
    evs = evs[: args.bus_events]
    t0 = time.perf_counter()
    pending = []
    for k, ev in enumerate(evs):
        pending.append(
            await bus.js.publish_async(
                subjects.job_events(ev.job_id), encode(ev), headers={"Nats-Msg-Id": f"b{k}"}
            )
        )
        if len(pending) >= 5000:
            await asyncio.gather(*pending)
            pending = []
    await asyncio.gather(*pending)
    pub_s = time.perf_counter() - t0
    spec = ConsumerSpec("JOB_EVENTS", "bench-catalog", "benchmark consumer")
    await bus.js.add_consumer("JOB_EVENTS", spec.config())
    done = asyncio.Event()
    seen = 0

    async def handle(batch: list[Delivery[Any]]) -> None:
        nonlocal seen
        await store.ingest(d.event for d in batch)
        seen += len(batch)
        if seen >= len(evs):
            done.set()

    consumer = PullConsumer.for_type(bus, spec, JobEvent, handle, batch=args.batch)
    t1 = time.perf_counter()
    consumer.start()
    await asyncio.wait_for(done.wait(), timeout=600)
    drain_s = time.perf_counter() - t1
    await consumer.stop()
    await store.close()
    # The catalog started for the HTTP part must not spend the measurement ingesting these.
    await bus.js.purge_stream("JOB_EVENTS")
    await bus.close()
    return {"events": len(evs), "publish_s": pub_s, "drain_s": drain_s, "rate": len(evs) / drain_s}


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q / 100 * (len(s) - 1)))]


async def bench_http(
    settings: Settings, nats_url: str, args: argparse.Namespace
) -> list[tuple[str, float, float]]:
    await UserStore.in_data_dir(settings.data_dir).add("bench", "benchmark-password")
    rt = Runtime(settings, [nats_url], [by_name("catalog")], http=True, http_port=0)
    await rt.start()
    results: list[tuple[str, float, float]] = []
    try:
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(base_url=rt.http_url, cookie_jar=jar) as http:
            async with http.post("/login", data={"username": "bench", "password": "benchmark-password"}) as r:
                assert r.status == 200, r.status
            cases = [
                ("GET /healthz (baseline)", "/healthz"),
                ("GET /api/objects (first page)", "/api/objects"),
                ("GET /api/objects?customer=…", "/api/objects?customer=cust07"),
                ("GET /api/objects?stage=published", "/api/objects?stage=published"),
                (
                    "GET /api/objects?status=disabled&customer=…",
                    "/api/objects?status=disabled&customer=cust11",
                ),
                ("GET /api/objects?q=lamp", "/api/objects?q=lamp"),
                (
                    "GET /api/objects?since=90 days&page=20",
                    f"/api/objects?since={time.time() - 90 * DAY:.0f}&page=20",
                ),
                ("GET /objects (HTML, signed in)", "/objects"),
                ("GET /objects?customer=…&stage=… (HTML)", "/objects?customer=cust03&stage=in_review"),
                ("GET /objects/{id} (HTML, 20+ events)", "/objects/cust01-arm-chair-001"),
            ]
            for label, url in cases:
                times = []
                for k in range(args.requests + 3):
                    t0 = time.perf_counter()
                    async with http.get(url) as r:
                        await r.read()
                        assert r.status == 200, (url, r.status)
                    if k >= 3:  # warm-up
                        times.append((time.perf_counter() - t0) * 1000)
                results.append((label, statistics.median(times), pct(times, 95)))
                print(f"  {label}: p50 {results[-1][1]:.1f} ms, p95 {results[-1][2]:.1f} ms", file=sys.stderr)
    finally:
        await rt.stop()
    return results


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--objects", type=int, default=100_000, help="objects in the catalog (default 100,000)")
    ap.add_argument("--events", type=int, default=2_000_000, help="timeline events (default 2,000,000)")
    ap.add_argument(
        "--bus-events", type=int, default=100_000, help="job events through JetStream (default 100,000)"
    )
    ap.add_argument("--batch", type=int, default=1000, help="events per ingest batch (default 1,000)")
    ap.add_argument("--requests", type=int, default=100, help="HTTP requests per case (default 100)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="f3d-bench-catalog-") as d:
        tmp = Path(d)
        settings = Settings.load(data_dir=tmp / "data", http_port=0)
        db = settings.service_dir("catalog") / "catalog.db"
        print(f"building {args.objects:,} objects / ~{args.events:,} events …", file=sys.stderr)
        ing = await bench_ingest(db, args)
        base = bench_baseline(tmp, args)
        server = await NatsServer(store_dir=tmp / "nats").astart()
        try:
            bus = await bench_bus(tmp, server.client_url, args)
            http = await bench_http(settings, server.client_url, args)
        finally:
            await asyncio.to_thread(server.stop)
    print("\n## Catalog results")
    print(f"catalog: {ing['objects']:,} objects, {ing['rows']:,} timeline rows from {ing['events']:,} events")
    print(f"store ingest (dedupe + projection): {ing['rate']:,.0f} events/s "
          f"({ing['busy_s']:.1f} s busy); redelivered batches added {ing['redelivered_new']:.0f} rows")  # fmt: skip
    print(f"baseline plain executemany: {base:,.0f} rows/s; ratio ingest/baseline {ing['rate'] / base:.2f}")
    print(f"bus: {bus['events']:,} job events published in {bus['publish_s']:.1f} s, "
          f"drained by the consumer at {bus['rate']:,.0f} events/s")  # fmt: skip
    print("\n| request | p50 ms | p95 ms | p95 / healthz p95 |")
    print("|---|---|---|---|")
    base_p95 = http[0][2]
    for label, p50, p95 in http:
        print(f"| {label} | {p50:.1f} | {p95:.1f} | {p95 / base_p95:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
