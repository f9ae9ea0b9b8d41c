"""The shared leadership lease (``libs/lease.py``): a holder gone from this host is replaced at
once; a live holder, or one whose pid means nothing here, keeps its lease until the TTL.

The bucket's TTL is a minute, far beyond the waits, so a takeover seen here cannot be the TTL's.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import msgspec

from foto3d.libs.bus.connection import Bus
from foto3d.libs.bus.topology import KVSpec, provision_kv
from foto3d.libs.lease import KEY, LeaderLease, LeaseHolder, process_table
from foto3d.libs.nats_server import NatsServer
from testkit.waiting import eventually

BUCKET = KVSpec("test-lease", "a lease for this test", ttl=60.0)

HOLDER = textwrap.dedent(
    """
    import asyncio, sys, time
    from foto3d.libs.bus.connection import connect
    from foto3d.libs.bus.topology import KVSpec
    from foto3d.libs.lease import LeaderLease, LeaseHolder

    async def main() -> None:
        bus = await connect([sys.argv[1]], "lease-holder")
        async def changed(leading: bool) -> None:
            print("leading" if leading else "standing by", flush=True)
        spec = KVSpec("test-lease", "a lease for this test", ttl=60.0)
        holder = LeaseHolder(instance="first", host="here", since=time.time())
        LeaderLease(bus, spec, holder, 0.5, changed).start()
        await asyncio.Event().wait()

    asyncio.run(main())
    """
)


@contextmanager
def first_holder(url: str) -> Iterator[subprocess.Popen[str]]:
    """Another process that takes the lease and says so on its first line."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, url], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "leading"
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


@asynccontextmanager
async def second(bus: Bus) -> AsyncIterator[LeaderLease]:
    async def changed(leading: bool) -> None:
        return None

    lease = LeaderLease(
        bus, BUCKET, LeaseHolder(instance="second", host="here", since=time.time()), 0.2, changed
    )
    lease.start()
    try:
        yield lease
    finally:
        await lease.stop()


async def rounds_after(lease: LeaderLease, n: int) -> None:
    """Wait until ``lease`` has tried ``n`` more times (each try reads the holder)."""
    target = lease.rounds + n
    await eventually(lambda: lease.rounds >= target, what=f"{n} lease rounds", timeout=30)


async def test_a_holder_killed_on_this_host_is_replaced_at_once(nats_server: NatsServer, bus: Bus) -> None:
    await provision_kv(bus.js, BUCKET)
    with first_holder(nats_server.client_url) as proc:
        async with second(bus) as lease:
            await rounds_after(lease, 3)
            assert not lease.is_leader, "a live holder's lease was taken"
            os.killpg(proc.pid, signal.SIGKILL)  # not reaped yet: a zombie counts as gone
            killed = time.monotonic()
            await eventually(lambda: lease.is_leader, what="the second instance to lead", timeout=30)
            took = time.monotonic() - killed
            assert took < BUCKET.ttl / 2, f"took {took:.1f} s: that is the TTL, not the shortcut"
            assert lease.previous is not None and lease.previous.instance == "first"
            kv = await bus.js.key_value(BUCKET.bucket)
            entry = await kv.get(KEY)
            now = msgspec.json.decode(entry.value or b"", type=LeaseHolder)
            assert (now.instance, now.pid) == ("second", os.getpid())


async def test_a_gone_pid_of_another_process_table_is_not_judged_here(bus: Bus) -> None:
    """The same pid on another machine, or in another container's namespace, is nothing to us:
    such a holder keeps its lease."""
    await provision_kv(bus.js, BUCKET)
    gone = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await gone.wait()
    kv = await bus.js.key_value(BUCKET.bucket)
    elsewhere = LeaseHolder(
        instance="elsewhere",
        host="there",
        since=time.time(),
        process_table="another-boot/pid:[1]",
        pid=gone.pid,
    )
    await kv.create(KEY, msgspec.json.encode(elsewhere))
    async with second(bus) as lease:
        assert process_table() is not None, "this test needs Linux's /proc"
        await rounds_after(lease, 5)
        assert not lease.is_leader and lease.leader is not None and lease.leader.instance == "elsewhere"


async def test_a_stopped_holder_still_holds(nats_server: NatsServer, bus: Bus) -> None:
    """A holder that is alive but paused (SIGSTOP: swapped out, debugged) is not gone: only its
    TTL may end its lease, and it steps down itself when it cannot renew."""
    await provision_kv(bus.js, BUCKET)
    with first_holder(nats_server.client_url) as proc:
        os.kill(proc.pid, signal.SIGSTOP)
        try:
            async with second(bus) as lease:
                await rounds_after(lease, 5)
                assert not lease.is_leader
        finally:
            os.kill(proc.pid, signal.SIGCONT)


async def test_a_holder_on_another_host_is_replaced_when_its_ttl_runs_out(bus: Bus) -> None:
    """The way across hosts: a holder elsewhere that stops renewing (its host died) loses the
    key to the bucket's TTL, and the standby's claim then succeeds."""
    short = KVSpec("test-lease-short", "a lease for this test", ttl=2.0)
    await provision_kv(bus.js, short)
    kv = await bus.js.key_value(short.bucket)
    elsewhere = LeaseHolder(
        instance="elsewhere", host="there", since=time.time(), process_table="another-boot/pid:[1]", pid=1
    )
    await kv.create(KEY, msgspec.json.encode(elsewhere))
    written = time.monotonic()

    async def changed(leading: bool) -> None:
        return None

    lease = LeaderLease(
        bus, short, LeaseHolder(instance="second", host="here", since=time.time()), 0.2, changed
    )
    lease.start()
    try:
        await eventually(lambda: lease.is_leader, what="the claim after the TTL", timeout=60)
        assert time.monotonic() - written >= short.ttl * 0.9, "taken before the holder's TTL ran out"
    finally:
        await lease.stop()
