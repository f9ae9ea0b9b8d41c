"""Trainers as real processes (`foto3d serve trainer`): SIGTERM hands work back, SIGKILL loses nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from foto3d.libs.bus.connection import Bus
from foto3d.libs.config import Settings
from foto3d.libs.nats_server import NatsServer
from foto3d.proto.jobs import JobStarted, JobSucceeded
from testkit.running import running_services
from testkit.waiting import eventually
from tests.trainer.helpers import (
    EventLog,
    fake_env,
    make_dataset,
    pid_alive,
    spawn_trainer,
    submit_work,
    work_item,
)


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
        p.wait(10)


def read_ledger(path: Path) -> list[tuple[str, int, float]]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        event, pid, ts, _ = line.split(" ", 3)
        rows.append((event, int(pid), float(ts)))
    return rows


async def test_sigterm_hands_the_job_back(
    nats_server: NatsServer,
    bus: Bus,
    settings: Settings,
    tmp_path: Path,
    procs: list[subprocess.Popen[bytes]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ledger = tmp_path / "ledger"
    env_a = fake_env(
        {
            "FAKE_NS_HANG": "train",
            "FAKE_NS_LEDGER": str(ledger),
            "FOTO3D_TRAINER_ID": "trainer-a",
            "FOTO3D_TRAINER_STOP_GRACE": "1",
        }
    )
    a = spawn_trainer(nats_server.client_url, tmp_path / "a", env_a)
    procs.append(a)
    item = work_item(make_dataset(tmp_path / "ds"))
    events = await EventLog.watch(bus, item.job_id)
    await submit_work(bus, item)
    first = await events.wait_for(JobStarted, timeout=20)
    assert first.actor == "trainer:trainer-a"
    await eventually(lambda: read_ledger(ledger), "ns-train to start", 10)
    ns_pid = read_ledger(ledger)[0][1]

    # A second trainer (this process, no hang) is ready to take what A hands back.
    for k, v in fake_env({"FOTO3D_TRAINER_ID": "trainer-b"}).items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("FAKE_NS_HANG", raising=False)
    async with running_services(settings, ["trainer"], http=False):
        sent = time.monotonic()
        a.send_signal(signal.SIGTERM)
        second = await events.wait_for(JobStarted, count=2, timeout=15)
        assert second.actor == "trainer:trainer-b"
        # nak'ed, not left to time out: the hand-over takes the grace, not ack_wait (30 s)
        assert time.monotonic() - sent < 10
        done = await events.wait_for(JobSucceeded, timeout=20)
        assert done.actor == "trainer:trainer-b"
    assert a.wait(15) == 0
    assert not pid_alive(ns_pid)


async def test_sigkill_redelivers_to_another_trainer_never_twice_at_once(
    nats_server: NatsServer,
    bus: Bus,
    tmp_path: Path,
    procs: list[subprocess.Popen[bytes]],
) -> None:
    ledger = tmp_path / "ledger"
    common = {
        "FAKE_NS_LEDGER": str(ledger),
        "FAKE_NS_STEP_DELAY": "0.02",
        "FOTO3D_TRAINER_KEEPALIVE": "1",
        "FOTO3D_TRAINER_HEARTBEAT": "1",
    }
    trainers = {}
    for name in ("trainer-a", "trainer-b"):
        p = spawn_trainer(
            nats_server.client_url, tmp_path / name, fake_env({**common, "FOTO3D_TRAINER_ID": name})
        )
        procs.append(p)
        trainers[name] = p
    # Both trainers are up (they beat) before the consumers' ack_wait is cut from 30 s to 3 s,
    # so the test does not wait half a minute; in_progress() every second must still hold the job.
    beating: set[str] = set()

    async def on_beat(msg: object) -> None:
        beating.add(getattr(msg, "subject", "").rsplit(".", 1)[-1])

    sub = await bus.nc.subscribe("f3d.hb.trainer.*", cb=on_beat)
    await eventually(lambda: beating >= set(trainers), "both trainers to beat", 20)
    await sub.unsubscribe()
    for durable in ("trainer-vip", "trainer-normal"):
        cfg = (await bus.js.consumer_info("WORK", durable)).config
        cfg.ack_wait = 3.0
        await bus.js.add_consumer("WORK", cfg)

    item = work_item(make_dataset(tmp_path / "ds"), steps=250)  # 5 s of training
    events = await EventLog.watch(bus, item.job_id)
    await submit_work(bus, item)
    first = await events.wait_for(JobStarted, timeout=15)
    owner = first.actor.removeprefix("trainer:")
    other = next(n for n in trainers if n != owner)
    await eventually(lambda: read_ledger(ledger), "ns-train to start", 10)
    # no event proves absence here: only the clock marks ack_wait passing without a redelivery
    await asyncio.sleep(4.0)  # longer than ack_wait: the keepalive must keep the job with its owner
    assert len(events.of(JobStarted)) == 1, "job redelivered while its trainer was alive"
    assert [r[0] for r in read_ledger(ledger)] == ["start"]

    trainers[owner].kill()
    killed_at = time.time()
    trainers[owner].wait(5)
    first_ns_pid = read_ledger(ledger)[0][1]
    await eventually(lambda: not pid_alive(first_ns_pid), "the killed trainer's ns-train to die with it", 5)

    second = await events.wait_for(JobStarted, count=2, timeout=15)
    assert second.actor == f"trainer:{other}"
    done = await events.wait_for(JobSucceeded, timeout=20)
    assert done.actor == f"trainer:{other}"

    rows = read_ledger(ledger)
    starts = [r for r in rows if r[0] == "start"]
    ends = [r for r in rows if r[0] == "end"]
    assert len(starts) == 2 and len(ends) == 1
    assert starts[0][1] == first_ns_pid and ends[0][1] == starts[1][1]
    assert starts[1][2] > killed_at, "the second run started before the first one was gone"
    assert os.path.exists(done.artifacts[0].uri.removeprefix("file://"))
