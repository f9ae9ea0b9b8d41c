"""Poison messages: bounds at the contract, and a consumer that a bad message cannot wedge."""

from __future__ import annotations

import errno
from typing import Any

import msgspec
import pytest

from foto3d.libs.bus.connection import Bus
from foto3d.libs.bus.consume import Delivery, PullConsumer
from foto3d.libs.bus.topology import ConsumerSpec
from foto3d.libs.config import Settings
from foto3d.proto import subjects
from foto3d.proto.heartbeat import Heartbeat
from foto3d.proto.logs import LogBatch
from testkit.running import running_services
from testkit.waiting import eventually
from tests.log_collector.helpers import batch


def test_numbers_beyond_what_json_and_sqlite_hold_are_refused_at_decoding() -> None:
    good = msgspec.json.encode(batch(1))
    dec = msgspec.json.Decoder(LogBatch)
    assert dec.decode(good).records[0].seq == 0
    too_big = good.replace(b'"seq":0', b'"seq":9223372036854775808')  # 2**63: the drill's value
    assert too_big != good
    with pytest.raises(msgspec.ValidationError, match="seq"):
        dec.decode(too_big)
    infinite = good.replace(b'"seq":0', b'"seq":0,"ts":1e999', 1)
    with pytest.raises(msgspec.ValidationError):
        dec.decode(infinite)


async def _stream(bus: Bus, name: str, max_deliver: int = -1) -> ConsumerSpec:
    spec = ConsumerSpec(name, f"{name.lower()}-c", "test consumer", ack_wait=5.0, max_deliver=max_deliver)
    await bus.js.add_stream(name=name, subjects=[f"{name.lower()}.>"])
    await bus.js.add_consumer(name, spec.config())
    return spec


def _hb(i: str) -> Heartbeat:
    return Heartbeat(kind="k", id=i, host="h", version="1", ts=1.0)


async def test_a_message_failing_its_handler_n_times_goes_to_dead_and_the_rest_flows(bus: Bus) -> None:
    spec = await _stream(bus, "PZ")
    handled: list[str] = []
    attempts = 0

    async def handler(deliveries: list[Delivery[Heartbeat]]) -> None:
        nonlocal attempts
        if any(d.event.id == "poison" for d in deliveries):
            attempts += 1
            raise OverflowError("Python int too large to convert to SQLite INTEGER")
        handled.extend(d.event.id for d in deliveries)

    for i in ("a", "poison", "b", "c"):
        await bus.publish(f"pz.{i}", _hb(i))
    consumer = PullConsumer.for_type(bus, spec, Heartbeat, handler, retry_delay=0.05, max_failures=3)
    consumer.start()
    try:

        async def dead_lettered() -> bool:
            return consumer.stats.dead_lettered == 1

        await eventually(dead_lettered, timeout=20, what="the poison message in DEAD")
    finally:
        await consumer.stop()
    assert sorted(handled) == ["a", "b", "c"]  # nothing good held back, nothing doubled
    # The first try is with the batch, each later one alone: 3 deliveries in all.
    assert attempts == 1 + 3
    dead = await bus.js.get_last_msg("DEAD", subjects.dead("PZ"))
    assert dead.headers is not None
    assert "handler failed 3 times: OverflowError" in dead.headers["F3D-Reason"]
    assert dead.data is not None and msgspec.json.decode(dead.data, type=Heartbeat).id == "poison"
    info = await bus.js.consumer_info("PZ", spec.durable)
    assert info.num_ack_pending == 0 and info.num_pending == 0
    assert consumer.stats.last_error == ""  # healthy again
    assert consumer.stats.malformed == 0


async def test_a_consumer_declared_with_a_smaller_max_deliver_dead_letters_at_its_last_delivery(
    bus: Bus,
) -> None:
    # The server would not deliver a third time: waiting for max_failures (5) would lose it.
    spec = await _stream(bus, "PM", max_deliver=2)
    attempts = 0

    async def handler(deliveries: list[Delivery[Heartbeat]]) -> None:
        nonlocal attempts
        attempts += 1
        raise ValueError("never fits")

    await bus.publish("pm.x", _hb("x"))
    consumer = PullConsumer.for_type(bus, spec, Heartbeat, handler, retry_delay=0.05)
    consumer.start()
    try:

        async def dead_lettered() -> bool:
            return consumer.stats.dead_lettered == 1

        await eventually(dead_lettered, timeout=20, what="the message in DEAD after 2 deliveries")
    finally:
        await consumer.stop()
    assert attempts == 2
    dead = await bus.js.get_last_msg("DEAD", subjects.dead("PM"))
    assert dead.headers is not None
    assert "handler failed 2 times: ValueError" in dead.headers["F3D-Reason"]


async def test_errors_of_the_surroundings_are_retried_not_dead_lettered(bus: Bus) -> None:
    spec = await _stream(bus, "PE")
    failures = 0
    handled: list[str] = []

    async def handler(deliveries: list[Delivery[Heartbeat]]) -> None:
        nonlocal failures
        if failures < 4:  # more than max_failures: a full disk that lasts a while
            failures += 1
            raise OSError(errno.ENOSPC, "No space left on device")
        handled.extend(d.event.id for d in deliveries)

    await bus.publish("pe.x", _hb("x"))
    consumer = PullConsumer.for_type(bus, spec, Heartbeat, handler, retry_delay=0.05, max_failures=2)
    consumer.start()
    try:

        async def stored() -> bool:
            return handled == ["x"]

        await eventually(stored, timeout=20, what="the message handled once the disk has room")
    finally:
        await consumer.stop()
    assert consumer.stats.dead_lettered == 0
    assert consumer.stats.last_error == ""


async def test_log_collector_dead_letters_the_drill_batch_and_stays_healthy(
    bus: Bus, settings: Settings
) -> None:
    bad = msgspec.json.encode(batch(2, source_id="poison")).replace(b'"seq":1', b'"seq":9223372036854775808')
    await bus.js.publish(subjects.logs("trainer", "poison"), bad)
    await bus.publish(subjects.logs("trainer", "gpu-1"), batch(5))
    async with running_services(settings, ["log_collector"], http=False) as rt:
        svc: Any = rt.services[0]

        async def good_stored() -> bool:
            return bool(svc.counts.stored == 5)

        await eventually(good_stored, timeout=20, what="the good batch stored")
        dead = await bus.js.get_last_msg("DEAD", subjects.dead("LOGS"))
        assert dead.headers is not None and "seq" in dead.headers["F3D-Reason"]
        health = rt.health()
        assert health["components"]["log_collector"]["state"] == "ok", health
