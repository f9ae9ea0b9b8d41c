"""`foto3d logs` as a user runs it, against a running collector."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import msgspec

from foto3d.libs.bus.connection import Bus
from foto3d.libs.config import Settings
from foto3d.proto import subjects
from foto3d.proto.api import ERROR_CODE_HEADER, ERROR_HEADER
from foto3d.proto.logs import LOG_QUERY, LogQuery
from foto3d.services.log_collector.service import LogCollector
from testkit.running import running_services
from testkit.waiting import eventually
from tests.log_collector.helpers import batch

FOTO3D = [sys.executable, "-m", "foto3d.cli.main"]


async def foto3d(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *FOTO3D, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode or 0, out.decode(), err.decode()


async def seed(bus: Bus, svc: LogCollector) -> None:
    t0 = time.time() - 60
    await bus.publish(
        subjects.logs("trainer", "gpu-1"), batch(10, job_id="job-c", message="iteration {i}", ts=t0)
    )
    await bus.publish(
        subjects.logs("trainer", "gpu-1"),
        batch(
            1,
            ts=t0 + 1,
            start_seq=10,
            job_id="job-c",
            level=40,
            message="training crashed",
            exc='Traceback (most recent call last):\n  File "train.py"\nRuntimeError: CUDA out of memory',
        ),
    )
    assert svc.store is not None
    store = svc.store

    async def stored() -> bool:
        return await store.count() == 11

    await eventually(stored, what="seed records")


async def test_logs_command_filters_formats_and_follows(settings: Settings, bus: Bus) -> None:
    async with running_services(settings, ["log_collector"], http=False) as rt:
        (svc,) = rt.services
        assert isinstance(svc, LogCollector)
        await seed(bus, svc)
        url = (settings.nats_urls or [""])[0]

        rc, out, err = await foto3d("logs", "--nats", url, "--job", "job-c", "--level", "warning")
        assert rc == 0, err
        lines = out.splitlines()
        assert "ERROR" in lines[0] and "trainer/gpu-1" in lines[0] and "job=job-c" in lines[0]
        assert lines[0].endswith("training crashed")
        assert lines[-1] == "    RuntimeError: CUDA out of memory"  # exception text indented
        assert "\033[" not in out  # no colours when not on a terminal

        rc, out, _ = await foto3d("logs", "--nats", url, "--grep", "iteration", "-n", "3", "--json")
        rows = [json.loads(line) for line in out.splitlines()]
        assert [r["message"] for r in rows] == ["iteration 7", "iteration 8", "iteration 9"]  # oldest first

        rc, out, _ = await foto3d("logs", "--nats", url, "--grep", 'cuda "memory', "--json")
        assert [json.loads(x)["seq"] for x in out.splitlines()] == [10]

        follow = await asyncio.create_subprocess_exec(
            *FOTO3D, "logs", "--nats", url, "--job", "job-c", "-n", "2", "-f", "--json",
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            assert follow.stdout is not None
            first = [json.loads(await follow.stdout.readline()) for _ in range(2)]
            assert [r["seq"] for r in first] == [9, 10]
            await bus.publish(subjects.logs("trainer", "gpu-1"), batch(1, start_seq=11, job_id="other"))
            await bus.publish(
                subjects.logs("trainer", "gpu-1"), batch(2, start_seq=12, job_id="job-c", message="live {i}")
            )
            nxt = [json.loads(await asyncio.wait_for(follow.stdout.readline(), 20)) for _ in range(2)]
            assert [(r["seq"], r["message"]) for r in nxt] == [(12, "live 0"), (13, "live 1")]
        finally:
            follow.terminate()
            await follow.wait()


async def test_logs_without_a_running_system_says_so(tmp_path: Path) -> None:
    env = {**os.environ, "FOTO3D_DATA": str(tmp_path / "nothing")}
    env.pop("FOTO3D_NATS_URL", None)
    rc, _, err = await foto3d("logs", env=env)
    assert rc == 2 and "no running foto3d" in err and "Traceback" not in err
    rc, _, err = await foto3d("logs", "--level", "loud", env=env)
    assert rc == 2 and "unknown log level" in err


async def test_logs_says_when_no_collector_answers(bus: Bus, nats_server: object) -> None:
    url = getattr(nats_server, "client_url", "")
    rc, _, err = await foto3d("logs", "--nats", url)
    assert rc == 2 and "log collector is not answering" in err


async def test_a_5000_record_page_of_long_lines_arrives_whole(settings: Settings, bus: Bus) -> None:
    async with running_services(settings, ["log_collector"], http=False) as rt:
        (svc,) = rt.services
        assert isinstance(svc, LogCollector) and svc.store is not None
        store = svc.store
        t0 = time.time() - 600
        line = "long line " + "x" * 300 + " {i}"
        for k in range(5):
            b = batch(1000, start_seq=k * 1000, ts=t0 + k, job_id="job-long", message=line)
            await bus.publish(subjects.logs("trainer", "gpu-1"), b)

        async def stored() -> bool:
            return await store.count() == 5000

        await eventually(stored, what="5,000 long records")
        everything = await store.query(LogQuery(limit=5000))
        assert len(msgspec.json.encode(everything)) > 2 * bus.nc.max_payload  # no one reply holds it

        url = (settings.nats_urls or [""])[0]
        rc, out, err = await foto3d("logs", "--nats", url, "--limit", "5000", "--json")
        assert rc == 0, err
        rows = [json.loads(x) for x in out.splitlines()]
        assert len(rows) == 5000
        assert [(r["seq"], r["message"]) for r in rows] == [
            (k * 1000 + i, line.format(i=i)) for k in range(5) for i in range(1000)
        ]


async def test_a_refused_or_unreadable_reply_is_explained_not_named(bus: Bus, nats_server: object) -> None:
    url = getattr(nats_server, "client_url", "")

    async def refuse(msg: Any) -> None:
        headers = {ERROR_CODE_HEADER: "500", ERROR_HEADER: "MaxPayloadError()"}
        await bus.nc.publish(msg.reply, b"", headers=headers)

    sub = await bus.nc.subscribe(LOG_QUERY.subject, cb=refuse)
    rc, _, err = await foto3d("logs", "--nats", url)
    await sub.unsubscribe()
    assert rc == 2 and "Traceback" not in err
    assert "the log collector could not answer: MaxPayloadError()" in err and "foto3d logs --help" in err

    async def garble(msg: Any) -> None:
        await msg.respond(b"{not json")

    sub = await bus.nc.subscribe(LOG_QUERY.subject, cb=garble)
    rc, _, err = await foto3d("logs", "--nats", url)
    await sub.unsubscribe()
    assert rc == 2 and "Traceback" not in err
    assert "reply could not be read" in err and "same release" in err
