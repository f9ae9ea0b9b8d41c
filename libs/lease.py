"""A leadership lease in a KV bucket: at most one leader among a service's instances.

Shared by the services that run active/standby (the queue, the notifier); each
names its own bucket. The leader holds key ``leader`` and renews it with a revision-checked update
every ``renew_s``; the bucket's TTL removes the key when renewals stop, and a
standby's ``create`` (which only succeeds when the key is absent) makes it the
leader. A leader that cannot renew steps down itself before the TTL runs out,
so two instances never both believe they lead.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import msgspec
import nats.errors
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from foto3d.libs.bus.connection import Bus
from foto3d.libs.bus.topology import KVSpec
from foto3d.libs.nats_server import pid_alive
from foto3d.libs.tasks import cancel_and_wait

log = logging.getLogger(__name__)
KEY = "leader"


class LeaseHolder(msgspec.Struct, frozen=True):
    instance: str
    host: str
    since: float
    # The holder's site (its `site` setting), so whoever takes over can say where from.
    site: str | None = None
    # Where the holder runs, to the process: ``process_table()`` and its pid. An instance that
    # sees the same process table can tell that the holder is gone (a kill -9 before a restart)
    # and take the lease at once instead of waiting for the TTL.
    process_table: str | None = None
    pid: int | None = None


def process_table() -> str | None:
    """This process table's identity: the kernel's boot id and the pid namespace (containers on
    one kernel have their own). None where neither can be read (not Linux): no shortcut there."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
    return f"{boot}/{namespace}"


def process_gone(pid: int) -> bool:
    """No process ``pid`` in this table, or only its zombie (killed, not yet reaped)."""
    if not pid_alive(pid):
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


Transition = Callable[[bool], Awaitable[None]]


class LeaderLease:
    def __init__(
        self, bus: Bus, bucket: KVSpec, holder: LeaseHolder, renew_s: float, on_change: Transition
    ) -> None:
        self.bus = bus
        self.spec = bucket
        self.name = bucket.bucket
        if holder.pid is None:
            holder = msgspec.structs.replace(holder, process_table=process_table(), pid=os.getpid())
        self.holder = holder
        self.renew_s = renew_s
        self.ttl = bucket.ttl
        self.on_change = on_change
        self.is_leader = False
        self.leader: LeaseHolder | None = None
        self.acquired_at: float | None = None
        # Who held the lease before this instance won it (None: nobody it saw, or itself).
        self.previous: LeaseHolder | None = None
        self._revision = 0
        self._last_renewed = 0.0
        self._kv: KeyValue | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self.rounds = 0
        self.round_done = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"lease:{self.name}")

    async def stop(self) -> None:
        """Stop and give the lease up at once, so a standby need not wait for the TTL."""
        self._stop.set()
        await cancel_and_wait(self._task)
        if self.is_leader and self._kv is not None:
            try:
                await asyncio.wait_for(self._kv.delete(KEY, last=self._revision), 2.0)
            except Exception:
                pass
            await self._set(False)

    async def _bucket(self) -> KeyValue:
        if self._kv is None:
            self._kv = await self.bus.js.key_value(self.spec.bucket)
        return self._kv

    async def _set(self, leading: bool) -> None:
        if leading == self.is_leader:
            return
        self.is_leader = leading
        if leading:
            self.acquired_at = time.time()
            # The holder last read while standing by: the one whose lease ran out or was released.
            seen = self.leader
            self.previous = seen if seen is not None and seen.instance != self.holder.instance else None
            self.leader = self.holder
            log.info("%s: %s is now the leader", self.name, self.holder.instance)  # routine, not a problem
        else:
            log.warning("%s: %s is no longer the leader", self.name, self.holder.instance)
        await self.on_change(leading)

    async def _run(self) -> None:
        value = msgspec.json.encode(self.holder)
        # A KV call that hangs while the cluster elects new stream leaders must not
        # outlive the lease; a timed-out write may still land, which _reconcile handles.
        op_timeout = max(1.0, self.renew_s)
        while not self._stop.is_set():
            try:
                kv = await self._bucket()
                if self.is_leader:
                    self._revision = await asyncio.wait_for(
                        kv.update(KEY, value, last=self._revision), op_timeout
                    )
                    self._last_renewed = time.monotonic()
                else:
                    self._revision = await asyncio.wait_for(kv.create(KEY, value), op_timeout)
                    self._last_renewed = time.monotonic()
                    await self._set(True)
            except KeyWrongLastSequenceError as exc:
                log.info("%s: %r", self.name, exc)
                await self._reconcile()
            except (TimeoutError, nats.errors.Error) as exc:
                log.info("%s: %s failed: %r", self.name, "renewal" if self.is_leader else "claim", exc)
                if self.is_leader and time.monotonic() - self._last_renewed > self.ttl - self.renew_s:
                    # Cannot renew: the lease may expire and another instance take it.
                    await self._set(False)
            self.rounds += 1
            self.round_done.set()
            await self._sleep(self.renew_s if self.is_leader else min(1.0, self.renew_s))

    async def _reconcile(self) -> None:
        """The key is not at the revision we expected: find out who holds it."""
        try:
            kv = await self._bucket()
            entry = await asyncio.wait_for(kv.get(KEY), max(1.0, self.renew_s))
            holder = msgspec.json.decode(entry.value or b"", type=LeaseHolder)
        except (KeyNotFoundError, TimeoutError, nats.errors.Error, msgspec.DecodeError) as exc:
            log.info("%s: cannot read the lease (%r)", self.name, exc)
            self.leader = None
            await self._set(False)
            return
        self.leader = holder
        if holder == self.holder:
            # Our own write that timed out had landed: we still hold the lease.
            self._revision = int(entry.revision or 0)
            self._last_renewed = time.monotonic()
            await self._set(True)
        elif not self.is_leader and self._orphaned(holder):
            await self._take_orphaned(kv, holder, int(entry.revision or 0))
        else:
            await self._set(False)

    def _orphaned(self, holder: LeaseHolder) -> bool:
        """The holder ran in this very process table and its process is gone: its lease would
        only run out its TTL. (Different machines, or containers with their own pid namespace,
        never match, so a live holder elsewhere is never judged by a pid that means nothing here.)"""
        return (
            holder.process_table is not None
            and holder.process_table == self.holder.process_table
            and holder.pid is not None
            and holder.pid != os.getpid()
            and process_gone(holder.pid)
        )

    async def _take_orphaned(self, kv: KeyValue, holder: LeaseHolder, revision: int) -> None:
        """Replace a gone holder's key, checked against the revision read: if anyone renewed or
        took it meanwhile, the update fails and nothing changes."""
        try:
            self._revision = await asyncio.wait_for(
                kv.update(KEY, msgspec.json.encode(self.holder), last=revision), max(1.0, self.renew_s)
            )
        except (KeyWrongLastSequenceError, TimeoutError, nats.errors.Error) as exc:
            log.info("%s: taking the lease of gone pid %s failed (%r)", self.name, holder.pid, exc)
            await self._set(False)
            return
        log.warning(
            "%s: %s took the lease at once: its holder %s (pid %s on this host) is gone",
            self.name,
            self.holder.instance,
            holder.instance,
            holder.pid,
        )
        self._last_renewed = time.monotonic()
        await self._set(True)

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
        except TimeoutError:
            pass
