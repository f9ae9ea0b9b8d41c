"""The sqlite log store on its own: dedupe, search, filters, paging, retention, truncation."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from foto3d.proto.logs import MAX_MESSAGE_CHARS, LogQuery
from foto3d.services.log_collector.retention import Pruner
from foto3d.services.log_collector.store import LogStore, rows_from_batches
from tests.log_collector.helpers import batch


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[LogStore]:
    s = await LogStore(tmp_path / "logs.db").open()
    yield s
    await s.close()


async def test_redelivered_batch_is_stored_once(store: LogStore) -> None:
    b = batch(50, ts=1_700_000_000.0)
    first = await store.insert(rows_from_batches([b]).rows)
    later = batch(10, start_seq=50, ts=1_700_000_001.0)
    again = await store.insert(rows_from_batches([b, later]).rows, want_new=True)
    assert (first.stored, first.duplicates) == (50, 0)
    assert (again.stored, again.duplicates) == (10, 50)
    assert [r.seq for r in again.new] == list(range(50, 60))
    assert await store.count() == 60
    # the read-back of the new rows agrees with what a query returns
    reply = await store.query(LogQuery(limit=10))
    assert [r.id for r in reply.records] == sorted((r.id for r in again.new), reverse=True)


async def test_ids_survive_reopen_and_are_never_reused(tmp_path: Path) -> None:
    s = await LogStore(tmp_path / "x.db").open()
    await s.insert(rows_from_batches([batch(5)]).rows)
    await s.delete_oldest(100)
    await s.close()
    s = await LogStore(tmp_path / "x.db").open()
    res = await s.insert(rows_from_batches([batch(2, start_seq=5)]).rows, want_new=True)
    assert [r.id for r in res.new] == [6, 7]
    await s.close()


async def test_full_text_search_with_awkward_user_text(store: LogStore) -> None:
    rows = rows_from_batches(
        [
            batch(1, message="CUDA out of memory: tried to allocate 2.5 GiB", level=40),
            batch(1, start_seq=1, message="foo-bar finished x", exc=None),
            batch(
                1, start_seq=2, message="ok", exc='Traceback (most recent call last):\n  ValueError: "bad"'
            ),
            batch(1, start_seq=3, message="timeout talking to NAS"),
        ]
    ).rows
    await store.insert(rows)

    async def find(text: str) -> list[int]:
        return [r.seq for r in (await store.query(LogQuery(text=text))).records]

    assert await find("memory cuda") == [0]
    assert await find('foo-bar "x') == [1]  # FTS syntax characters are just text
    assert await find("valueerror") == [2]  # the exception text is indexed too
    assert await find("timeo*") == [3]  # a trailing * keeps its prefix meaning
    assert await find("AND OR NOT") == []
    assert await find('"') == []
    assert await find("NEAR(memory") == []
    assert await find("(") == []


async def test_filters_levels_time_range_and_paging(store: LogStore) -> None:
    t0 = 1_700_000_000.0
    await store.insert(
        rows_from_batches(
            [
                batch(30, ts=t0, level=20, job_id="job-a", source_id="rig-1", source_kind="rig"),
                batch(5, start_seq=30, ts=t0 + 100, level=30, job_id="job-a", object_id="obj-z"),
                batch(3, start_seq=35, ts=t0 + 200, level=40, job_id="job-b", host="host-b"),
            ]
        ).rows
    )
    assert await store.count(LogQuery(job_id="job-a")) == 35
    assert await store.count(LogQuery(min_level=30)) == 8
    assert await store.count(LogQuery(min_level=40, host="host-b")) == 3
    assert await store.count(LogQuery(source_kind="rig", source_id="rig-1")) == 30
    assert await store.count(LogQuery(object_id="obj-z")) == 5
    assert await store.count(LogQuery(since=t0 + 50, until=t0 + 150)) == 5
    # newest first, paged by the next_before cursor, no overlaps and nothing skipped
    seen: list[int] = []
    q = LogQuery(job_id="job-a", limit=8)
    while True:
        reply = await store.query(q)
        seen += [r.seq for r in reply.records]
        if reply.next_before is None:
            break
        q = LogQuery(job_id="job-a", limit=8, before=reply.next_before)
    assert seen == list(range(34, -1, -1))
    # around_ts: the lines up to that moment, closest first
    around = await store.query(LogQuery(around_ts=t0 + 100.002, limit=4))
    assert [r.seq for r in around.records] == [32, 31, 30, 29]


async def test_long_message_is_truncated_with_marker_not_dropped(store: LogStore) -> None:
    prepared = rows_from_batches([batch(1, message="x" * 100_000)])
    assert prepared.truncated == 1
    await store.insert(prepared.rows)
    (rec,) = (await store.query(LogQuery())).records
    assert rec.message.startswith("x" * 100)
    assert rec.message.endswith(f"…[truncated {100_000 - MAX_MESSAGE_CHARS} chars]")


async def test_retention_by_age_keeps_recent_records(store: LogStore) -> None:
    old = time.time() - 10 * 86400
    await store.insert(rows_from_batches([batch(500, ts=old), batch(20, start_seq=500)]).rows)
    pruner = Pruner(store, retention_days=7, max_db_mb=0, chunk=100, pause_s=0)
    assert await pruner.run_once() == 500
    assert await store.count() == 20
    # the full-text index forgot the pruned rows too
    assert await store.count(LogQuery(text="step")) == 20


async def test_retention_by_size_drops_oldest_first(store: LogStore) -> None:
    filler = "lorem ipsum dolor sit amet " * 20
    for k in range(10):
        b = batch(1000, start_seq=k * 1000, message=filler + "{i}", ts=time.time() + k * 2)
        await store.insert(rows_from_batches([b]).rows)
    used = await store.used_bytes()
    cap_mb = used / 2 / (1024 * 1024)
    pruner = Pruner(store, retention_days=0, max_db_mb=cap_mb, chunk=500, pause_s=0)
    for _ in range(4):
        await pruner.run_once()
    assert await store.used_bytes() <= cap_mb * 1024 * 1024
    remaining = await store.count()
    assert 0 < remaining < 10_000
    newest = await store.query(LogQuery(limit=1))
    assert newest.records[0].seq == 9_999  # the newest records are the ones kept
    oldest = (await store.query(LogQuery(limit=5000))).records[-1]
    assert oldest.seq == 10_000 - remaining


async def test_pruning_while_ingesting_keeps_the_index_consistent(store: LogStore) -> None:
    old = time.time() - 30 * 86400
    await store.insert(rows_from_batches([batch(3000, ts=old, source_id="old-src")]).rows)
    pruner = Pruner(store, retention_days=7, max_db_mb=0, chunk=100, pause_s=0)

    async def ingest() -> None:
        for k in range(30):
            await store.insert(rows_from_batches([batch(200, start_seq=k * 200)]).rows)

    pruned, _ = await asyncio.gather(pruner.run_once(), ingest())
    assert pruned == 3000
    assert await store.count() == 6000
    assert await store.count(LogQuery(text="step")) == 6000
    # sqlite's own check that the FTS index matches the table exactly
    await store.writer.execute("INSERT INTO logs_fts (logs_fts) VALUES ('integrity-check')")


async def test_a_late_replay_is_read_in_time_order_not_arrival_order(store: LogStore) -> None:
    t0 = 1_700_000_000.0
    # Newer lines first, then a spooled backlog written before them (and ties on ts, broken
    # by source and sequence).
    await store.insert(rows_from_batches([batch(20, start_seq=100, ts=t0 + 10, source_id="cam")]).rows)
    await store.insert(rows_from_batches([batch(100, ts=t0, source_id="cam")]).rows)
    await store.insert(rows_from_batches([batch(1, ts=t0 + 10, source_id="cal")]).rows)
    newest = await store.query(LogQuery(source_id="cam", limit=3))
    assert [r.seq for r in newest.records] == [119, 118, 117]
    seen: list[tuple[float, str, int]] = []
    q = LogQuery(limit=7)
    while True:
        reply = await store.query(q)
        seen += [(r.ts, r.source_id, r.seq) for r in reply.records]
        if reply.next_before is None:
            break
        q = LogQuery(limit=7, before=reply.next_before)
    assert seen == sorted(seen, reverse=True) and len(seen) == 121
    assert (t0 + 10, "cal", 0) in seen and seen.index((t0 + 10, "cam", 100)) < seen.index((t0 + 10, "cal", 0))
    # the lines around a moment are the ones written before it, whenever they arrived
    around = await store.query(LogQuery(around_ts=t0 + 0.05, limit=3))
    assert [r.seq for r in around.records] == [50, 49, 48]


async def test_a_page_ends_at_the_byte_budget_and_says_where_the_next_starts(store: LogStore) -> None:
    await store.insert(rows_from_batches([batch(5000, message="x" * 250 + " {i}", ts=1_700_000_000.0)]).rows)
    got: list[int] = []
    pages = 0
    q = LogQuery(limit=5000)
    while True:
        reply = await store.query(q, max_bytes=256 * 1024)
        assert len(msgspec.json.encode(reply)) <= 256 * 1024
        got += [r.seq for r in reply.records]
        pages += 1
        if reply.next_before is None:
            break
        q = LogQuery(limit=5000 - len(got), before=reply.next_before)
    assert got == list(range(4999, -1, -1))
    assert pages > 4
    with pytest.raises(ValueError, match="paging cursor"):
        await store.query(LogQuery(before="yesterday"))
