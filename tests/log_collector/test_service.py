"""The collector against a real nats-server: ingest, the three query paths, bad input, live tail."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import msgspec
import pytest
from nats.js.api import ConsumerConfig, DeliverPolicy

from foto3d.libs.bus.connection import Bus
from foto3d.libs.config import Settings
from foto3d.proto import subjects
from foto3d.proto.api import BAD_REQUEST, ServiceError
from foto3d.proto.logs import LOG_QUERY, MAX_MESSAGE_CHARS, LogQuery
from foto3d.services.log_collector.service import LogCollector
from testkit.running import running_services
from testkit.signin import staff_cookie
from testkit.waiting import eventually
from tests.log_collector.helpers import batch


def collector_of(rt: Any) -> LogCollector:
    (svc,) = rt.services
    assert isinstance(svc, LogCollector)
    return svc


async def stored(svc: LogCollector) -> int:
    assert svc.store is not None
    return await svc.store.count()


async def test_batches_are_searchable_over_nats_and_http(settings: Settings, bus: Bus) -> None:
    async with running_services(settings, ["log_collector"]) as rt:
        svc = collector_of(rt)
        await bus.publish(subjects.logs("trainer", "gpu-1"), batch(40, job_id="job-7"))
        await bus.publish(
            subjects.logs("rig", "rig-2"),
            batch(3, source_kind="rig", source_id="rig-2", level=40, job_id=None, message="lamp {i} failed"),
        )
        await eventually(lambda: _eq(stored(svc), 43), what="43 records stored")

        reply = await bus.call(LOG_QUERY, LogQuery(job_id="job-7", limit=5))
        assert [r.seq for r in reply.records] == [39, 38, 37, 36, 35]
        assert reply.next_before == f"{reply.records[-1].ts!r}:35:trainer:gpu-1"
        reply = await bus.call(LOG_QUERY, LogQuery(text="lamp failed", min_level=40))
        assert {r.source_id for r in reply.records} == {"rig-2"} and len(reply.records) == 3
        # a bad request body gets an error reply (micro's error headers), not silence
        with pytest.raises(ServiceError, match="bad request") as refused:
            await bus.call(LOG_QUERY, LogQuery(limit=0), timeout=5)  # Structs validate on decoding only
        assert refused.value.code == BAD_REQUEST
        with pytest.raises(ServiceError, match="paging cursor") as refused:
            await bus.call(LOG_QUERY, LogQuery(before="81234"), timeout=5)  # an old-style id is refused
        assert refused.value.code == BAD_REQUEST

        async with aiohttp.ClientSession(cookies=await staff_cookie(settings)) as http:
            async with http.get(rt.http_url + "/api/logs", params={"level": "error", "kind": "rig"}) as r:
                body = await r.json()
                assert r.status == 200 and len(body["records"]) == 3
            async with http.get(rt.http_url + "/api/logs", params={"job": "job-7", "limit": "10"}) as r:
                page1 = await r.json()
            async with http.get(
                rt.http_url + "/api/logs",
                params={"job": "job-7", "limit": "10", "before": page1["next_before"]},
            ) as r:
                page2 = await r.json()
            assert [x["seq"] for x in page1["records"] + page2["records"]] == list(range(39, 19, -1))
            for params, needle in [
                ({"level": "loud"}, "level"),
                ({"limit": "0"}, "limit"),
                ({"since": "yesterday-ish"}, "since"),
                ({"before": "x"}, "before"),
                ({"before_id": "3"}, "before_id"),
                ({"colour": "red"}, "colour"),
            ]:
                async with http.get(rt.http_url + "/api/logs", params=params) as r:
                    assert r.status == 400, params
                    assert needle in (await r.json())["error"]
            async with http.get(rt.http_url + "/healthz") as r:
                comp = (await r.json())["components"]["log_collector"]
                assert comp["state"] == "ok" and comp["stored"] == 43


async def _eq(aw: Any, value: int) -> bool:
    return bool(await aw == value)


async def dead_letters(bus: Bus) -> list[tuple[bytes, dict[str, str]]]:
    sub = await bus.js.pull_subscribe(
        subjects.dead("logs"), durable=None, config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL)
    )
    out = []
    try:
        for m in await sub.fetch(10, timeout=2):
            out.append((m.data, dict(m.headers or {})))
    except TimeoutError:
        pass
    finally:
        await sub.unsubscribe()
    return out


async def test_malformed_and_oversized_messages_are_dead_lettered_and_counted(
    settings: Settings, bus: Bus
) -> None:
    async with running_services(settings, ["log_collector"]) as rt:
        svc = collector_of(rt)
        subj = subjects.logs("sdk", "bad-client")
        await bus.publisher.publish_bytes(subj, b"this is not json")
        await bus.publisher.publish_bytes(subj, b'{"type": "log.batch/1", "records": "nope"}')
        good = msgspec.json.encode(batch(1))
        await bus.publisher.publish_bytes(subj, good[:-1] + b',"pad":"' + b"p" * 700_000 + b'"}')
        # decodes fine, but one record is 100 kB: stored, cut with a visible marker
        await bus.publish(subj, batch(1, source_id="long-1", message="y" * 100_000))
        await eventually(lambda: _eq(stored(svc), 1), what="the long record")
        # the collector keeps working after all of that
        await bus.publish(subj, batch(5, start_seq=100))
        await eventually(lambda: _eq(stored(svc), 6), what="records after bad input")

        stats = svc.stats()
        assert (stats["malformed"], stats["oversized"], stats["truncated"]) == (2, 1, 1)
        (long_rec,) = (await svc.query(LogQuery(source_id="long-1"))).records
        assert len(long_rec.message) < MAX_MESSAGE_CHARS + 100 and "truncated" in long_rec.message
        dead = await dead_letters(bus)
        reasons = [h["F3D-Reason"] for _, h in dead]
        assert len(dead) == 3
        assert sum("oversized" in r for r in reasons) == 1
        assert sum("malformed" in r and "oversized" not in r for r in reasons) == 2
        assert dead[0][0] == b"this is not json"  # the original bytes are kept
        assert all(h["F3D-Original-Subject"] == subj for _, h in dead)
        async with (
            aiohttp.ClientSession(cookies=await staff_cookie(settings)) as http,
            http.get(rt.http_url + "/api/logs/stats") as r,
        ):
            assert (await r.json())["malformed"] == 2


async def test_live_tail_streams_committed_records_matching_the_filter(settings: Settings, bus: Bus) -> None:
    async with running_services(settings, ["log_collector"]) as rt:
        async with aiohttp.ClientSession(cookies=await staff_cookie(settings)) as http:
            url = rt.http_url + "/api/logs/stream"
            async with http.get(url, params={"level": "error", "job": "job-9"}) as resp:
                assert resp.headers["Content-Type"].startswith("text/event-stream")
                await resp.content.readline()  # ": connected" -> we are subscribed
                await bus.publish(subjects.logs("trainer", "gpu-1"), batch(5, job_id="job-9"))
                await bus.publish(
                    subjects.logs("trainer", "gpu-1"),
                    batch(2, start_seq=5, job_id="job-9", level=40, message="boom {i}", exc="Traceback…"),
                )
                await bus.publish(
                    subjects.logs("trainer", "gpu-1"), batch(1, start_seq=7, job_id="other", level=50)
                )
                events: list[dict[str, Any]] = []
                while len(events) < 2:
                    line = (await resp.content.readline()).decode()
                    if line.startswith("data: "):
                        events.append(json.loads(line[6:]))
                assert [(e["seq"], e["message"], e["exc"]) for e in events] == [
                    (5, "boom 0", "Traceback…"),
                    (6, "boom 1", "Traceback…"),
                ]
        async with (
            aiohttp.ClientSession(cookies=await staff_cookie(settings)) as http,
            http.get(rt.http_url + "/api/logs/stream", params={"level": "x"}) as resp,
        ):
            assert resp.status == 400
