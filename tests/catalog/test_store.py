"""The catalog store's ingest: any order, any batching, any redelivery -> the same catalog."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path
from typing import Any

from foto3d.proto.jobs import Artifact, JobFailed, JobQueued, JobStarted, JobSucceeded, Priority, TrainOptions
from foto3d.proto.objects import (
    Checklist,
    CustomerAdded,
    Decision,
    LiveStatus,
    ObjectCaptured,
    ObjectPublished,
    ObjectRegistered,
    ObjectReview,
    ObjectStatusChanged,
)
from foto3d.services.catalog.projection import AnyEvent, project
from foto3d.services.catalog.store import CatalogStore

OK = Checklist(training_quality=True, alignment=True, manual_adjustments=True)


def life(i: int, length: int) -> list[AnyEvent]:
    oid = f"acme-thing{i}-001"
    t = 1000.0 * i
    art = [Artifact(kind="splat", format="ply", uri=f"file:///a/{i}.ply", bytes=10, sha256="0" * 64)]
    evs: list[AnyEvent] = [
        ObjectRegistered(
            event_id=f"r{i}",
            object_id=oid,
            ts=t + 1,
            customer="acme",
            display_name=f"Thing {i}",
            slug=f"thing{i}",
            serial=1,
        ),
        ObjectCaptured(event_id=f"c{i}", object_id=oid, ts=t + 2, dataset=f"/d/{i}"),
        JobQueued(
            job_id=f"j{i}",
            object_id=oid,
            ts=t + 3,
            dataset=f"/d/{i}",
            priority=Priority.NORMAL,
            options=TrainOptions(),
        ),
        JobStarted(job_id=f"j{i}", object_id=oid, ts=t + 4, trainer="t", host="h"),
        JobFailed(job_id=f"j{i}", object_id=oid, ts=t + 5, error="oom", will_retry=True),
        JobStarted(job_id=f"j{i}", object_id=oid, ts=t + 6, attempt=2, trainer="t", host="h"),
        JobSucceeded(job_id=f"j{i}", object_id=oid, ts=t + 7, attempt=2, artifacts=art),
        ObjectReview(
            event_id=f"v{i}",
            object_id=oid,
            ts=t + 8,
            decision=Decision.APPROVED,
            job_id=f"j{i}",
            checklist=OK,
        ),
        ObjectPublished(
            event_id=f"p{i}",
            object_id=oid,
            ts=t + 9,
            version=1,
            job_id=f"j{i}",
            live_url=f"https://x/{i}",
            files=[],
        ),
        ObjectStatusChanged(event_id=f"s{i}a", object_id=oid, ts=t + 10, status=LiveStatus.DISABLED),
        ObjectStatusChanged(event_id=f"s{i}b", object_id=oid, ts=t + 11, status=LiveStatus.DEMO),
    ]
    return evs[:length]


def snapshot(path: Path) -> tuple[list[Any], int, list[Any]]:
    con = sqlite3.connect(path)
    objects = con.execute("SELECT * FROM objects ORDER BY object_id").fetchall()
    events = con.execute("SELECT count(*) FROM events").fetchone()[0]
    jobs = con.execute(
        "SELECT job_id, state, attempt, dataset, artifacts IS NOT NULL FROM jobs ORDER BY 1"
    ).fetchall()
    con.close()
    return objects, events, jobs


async def ingest(path: Path, events: list[AnyEvent], batch: int) -> None:
    store = await CatalogStore(path).open()
    for s in range(0, len(events), batch):
        await store.ingest(events[s : s + batch])
    await store.close()


async def test_order_batching_and_redelivery_do_not_change_the_result(tmp_path: Path) -> None:
    rng = random.Random(7)
    lengths = [
        11,
        10,
        8,
        7,
        4,
        3,
        2,
        1,
        *(rng.randint(1, 11) for _ in range(32)),
    ]  # 0: all the way; 1: disabled
    events = [ev for i, n in enumerate(lengths) for ev in life(i, n)]
    await ingest(tmp_path / "ordered.db", events, 1000)
    shuffled = events[:]
    rng.shuffle(shuffled)
    await ingest(tmp_path / "shuffled.db", shuffled + shuffled[: len(shuffled) // 2], 7)
    one_by_one = list(reversed(events))
    await ingest(tmp_path / "reversed.db", one_by_one, 1)
    want = snapshot(tmp_path / "ordered.db")
    assert snapshot(tmp_path / "shuffled.db") == want
    assert snapshot(tmp_path / "reversed.db") == want
    con = sqlite3.connect(tmp_path / "shuffled.db")
    stages = dict(con.execute("SELECT object_id, stage FROM objects").fetchall())
    con.close()
    assert stages["acme-thing0-001"] == "published"  # disabled, then demo again
    assert stages["acme-thing1-001"] == "disabled"
    assert {"registered", "captured", "submitted", "training", "in_review", "approved"} <= set(
        stages.values()
    )


def test_the_objects_timeline_names_the_jobs_trace() -> None:
    """The object's page shows the trace id of each job (to look it up in the tracing backend)."""
    tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    queued = JobQueued(
        job_id="j-1",
        object_id="acme-lamp-001",
        ts=1.0,
        attempt=1,
        dataset="/data/x",
        priority=Priority.NORMAL,
        options=TrainOptions(),
        traceparent=tp,
    )
    (entry,) = project(queued).entries
    assert entry.summary.endswith("; trace 4bf92f3577b34da6a3ce929d0e0e4736")


async def test_a_customer_is_recorded_once_with_its_name_and_who_added_it(tmp_path: Path) -> None:
    added = CustomerAdded(event_id="customer-acme", customer="acme", name="ACME Corp", ts=5.0, actor="rev")
    # A later event for the same slug (it cannot be sent twice, but a stream could hold one)
    # does not rename the customer: the first addition wins, whatever the batching.
    again = CustomerAdded(event_id="customer-acme-2", customer="acme", name="Other", ts=9.0, actor="x")
    events: list[AnyEvent] = [added, *life(0, 4), added, again, added]
    for batch in (1, 2, len(events)):
        path = tmp_path / f"customers-{batch}.db"
        await ingest(path, events, batch)
        con = sqlite3.connect(path)
        rows = con.execute("SELECT slug, name, created, actor FROM customers").fetchall()
        con.close()
        assert rows == [("acme", "ACME Corp", 5.0, "rev")]
        assert snapshot(path) == snapshot(tmp_path / f"customers-{1}.db")
