"""The bus layer against a real nats-server: provisioning, typed publish, pull consumers."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest

from foto3d.app.registry import ServiceEntry
from foto3d.app.topology import assemble
from foto3d.libs.bus.connection import Bus
from foto3d.libs.bus.consume import Delivery, PullConsumer
from foto3d.libs.bus.topology import ConsumerSpec, StreamSpec, Topology, provision
from foto3d.libs.service import Service, ServiceContext
from foto3d.proto import subjects
from foto3d.proto.heartbeat import Heartbeat


async def test_provision_is_idempotent_and_applies_changes(bus: Bus) -> None:
    again = await provision(bus.js, assemble())
    assert set(again.values()) <= {"unchanged", "ok"}
    changed = Topology(
        streams=[StreamSpec("LOGS", [subjects.LOGS_ALL], "changed description", max_age=3600.0)],
        consumers=[],
        kv=[],
    )
    result = await provision(bus.js, changed)
    assert result["stream:LOGS"] == "updated"
    info = await bus.js.stream_info("LOGS")
    assert info.config.max_age == 3600.0
    assert info.config.description == "changed description"


async def test_publish_dedupes_by_msg_id_and_carries_traceparent(bus: Bus) -> None:
    hb = Heartbeat(kind="test", id="a", host="h", version="1", ts=1.0)
    await bus.js.add_stream(name="T", subjects=["t.>"], duplicate_window=60)
    ack1 = await bus.publish("t.x", hb, msg_id="same")
    ack2 = await bus.publish("t.x", hb, msg_id="same")
    assert ack2.duplicate and ack1.seq == ack2.seq
    msg = await bus.js.get_msg("T", ack1.seq)
    assert msg.headers is not None
    assert msg.headers["traceparent"].startswith("00-")
    assert msg.headers["Nats-Msg-Id"] == "same"


async def test_pull_consumer_acks_after_handler_and_dead_letters_malformed(bus: Bus) -> None:
    spec = ConsumerSpec("T2", "t2-consumer", "test consumer", ack_wait=2.0)
    await bus.js.add_stream(name="T2", subjects=["t2.>"])
    await bus.js.add_consumer("T2", spec.config())
    got: list[Heartbeat] = []
    calls = 0
    done = asyncio.Event()

    async def handler(batch: list[Delivery[Heartbeat]]) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("simulated crash before commit")
        got.extend(d.event for d in batch)
        if len(got) >= 3:
            done.set()

    for i in range(3):
        await bus.publish("t2.a", Heartbeat(kind="k", id=f"i{i}", host="h", version="1", ts=float(i)))
    await bus.js.publish("t2.a", b'{"type":"heartbeat/1","kind":"BAD KIND"}')
    consumer = PullConsumer.for_type(bus, spec, Heartbeat, handler, retry_delay=0.1)
    consumer.start()
    await asyncio.wait_for(done.wait(), 15)
    await consumer.stop()
    assert sorted(h.id for h in got) == ["i0", "i1", "i2"]
    assert consumer.stats.malformed == 1
    dead = await bus.js.get_last_msg("DEAD", subjects.dead("T2"))
    assert dead.headers is not None and "malformed" in dead.headers["F3D-Reason"]
    info = await bus.js.consumer_info("T2", "t2-consumer")
    assert info.num_ack_pending == 0 and info.num_pending == 0


def test_topology_table_names_are_unique() -> None:
    topology = assemble()
    names = [s.name for s in topology.streams]
    assert len(names) == len(set(names))
    pairs = [(c.stream, c.durable) for c in topology.consumers]
    assert len(pairs) == len(set(pairs))
    # Every service's declared consumers are in: the trainer's too, though `up` runs none.
    assert {("WORK", "trainer-vip"), ("LOGS", "log-collector"), ("JOB_EVENTS", "catalog-jobs")} <= set(pairs)


def test_a_consumer_on_an_undeclared_stream_is_refused() -> None:
    class Stray(Service):
        name = "stray"
        description = ""
        consumer_specs = (ConsumerSpec("NOPE", "stray", ""),)

        async def start(self, ctx: ServiceContext) -> None:
            del ctx

        async def stop(self) -> None:
            return None

    import sys
    import types

    module = types.ModuleType("stray_service_for_test")
    module.Stray = Stray  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    try:
        with pytest.raises(ValueError, match="NOPE/stray"):
            assemble([ServiceEntry("stray", f"{module.__name__}:Stray")])
    finally:
        del sys.modules[module.__name__]


def test_event_decoding_rejects_bad_input() -> None:
    dec = msgspec.json.Decoder(Heartbeat)
    with pytest.raises(msgspec.ValidationError):
        dec.decode(b'{"type":"heartbeat/1","kind":"ok","id":"x"}')


async def test_services_register_with_nats_micro(settings: Any, bus: Bus) -> None:
    """`nats micro ls` sends $SRV.INFO; every running service must answer with its name and endpoints."""
    import json

    from testkit.running import running_services

    async with running_services(settings, ["log_collector"], http=False):
        inbox = bus.nc.new_inbox()
        sub = await bus.nc.subscribe(inbox)
        await bus.nc.publish("$SRV.INFO", b"", reply=inbox)
        msg = await sub.next_msg(timeout=5)
        info = json.loads(msg.data)
        assert info["name"] == "foto3d-log-collector"
        assert any(ep["subject"] == "f3d.api.logs.query" for ep in info["endpoints"])
        await sub.unsubscribe()
