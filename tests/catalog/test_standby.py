"""Two catalog processes, one writer: a standby forwards writes, and takes over after a kill -9.

Each instance reads OBJECT_EVENTS and JOB_EVENTS through its own consumers into its own
sqlite (a warm standby); the holder of the ``catalog-leader`` lease alone writes. A
registration and a customer's addition are the first event on their subject, published
with ``Nats-Expected-Last-Subject-Sequence: 0``, so no object id or customer is taken twice
even by two writers.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
from nats.js.errors import KeyNotFoundError

from foto3d.libs.auth import UserStore
from foto3d.libs.bus.connection import CREDS_ENV, Bus
from foto3d.libs.lease import KEY, LeaseHolder
from foto3d.libs.nats_server import NatsServer
from foto3d.proto import subjects
from foto3d.proto.api import ServiceError
from foto3d.proto.objects import CUSTOMER_ADD, CustomerAdd, CustomerAdded
from foto3d.proto.permissions import CATALOG_LEASE_BUCKET
from foto3d.services.catalog.actions import ActionError, Catalog
from foto3d.services.catalog.store import CatalogStore
from testkit.identities import creds_for
from testkit.servers import free_port
from testkit.waiting import eventually

PASSWORD = "correct horse battery"
CUSTOMER = "acme"
# Writes accepted (by both instances together) before the leader is killed, and writes the
# survivor must accept after it.
BEFORE_KILL = 16
AFTER_KILL = 10


@dataclass
class Instance:
    name: str
    data: Path
    port: int
    proc: subprocess.Popen[bytes]
    session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def db(self) -> Path:
        return self.data / "catalog" / "catalog.db"


async def add_staff(data: Path) -> None:
    """A staff user to sign in as, in the instance's own user store (each host has one)."""
    data.mkdir(exist_ok=True)
    users = UserStore.in_data_dir(data)
    if await users.get("rev") is None:
        await users.add("rev", PASSWORD, "Rev")


def start_catalog(name: str, tmp_path: Path, nats_url: str, port: int | None = None) -> Instance:
    """``foto3d serve catalog`` as instance ``name``, in its own process group (a ``killpg``
    takes it at once, as a host's power loss would)."""
    data = tmp_path / name
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOTO3D_")}
    env |= {CREDS_ENV: str(creds_for("catalog")), "FOTO3D_CATALOG_INSTANCE": name}
    port = port or free_port()
    argv = [sys.executable, "-m", "foto3d.cli.main", "serve", "catalog", "--nats", nats_url]
    argv += ["--data", str(data), "--port", str(port)]
    log = (tmp_path / f"{name}.log").open("ab")
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return Instance(name, data, port, proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


async def health(inst: Instance) -> dict[str, Any] | None:
    try:
        async with aiohttp.ClientSession() as s, s.get(f"{inst.url}/healthz") as r:
            report = await r.json()
    except (aiohttp.ClientError, OSError, ValueError):
        return None
    comp = report.get("components", {}).get("catalog")
    return comp if isinstance(comp, dict) and "role" in comp else None


async def role(inst: Instance) -> str | None:
    h = await health(inst)
    return str(h["role"]) if h else None


async def sign_in(inst: Instance) -> aiohttp.ClientSession:
    session = aiohttp.ClientSession(base_url=inst.url, cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with session.post(
        "/login", data={"username": "rev", "password": PASSWORD, "next": "/objects"}, allow_redirects=False
    ) as r:
        assert r.status == 302, await r.text()
    inst.session = session
    return session


async def post(inst: Instance, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    assert inst.session is not None
    async with inst.session.post(path, json=body, timeout=aiohttp.ClientTimeout(total=60)) as r:
        return r.status, await r.json()


async def lease_holder(bus: Bus) -> str | None:
    kv = await bus.js.key_value(CATALOG_LEASE_BUCKET)
    try:
        entry = await kv.get(KEY)
    except KeyNotFoundError:
        return None
    return msgspec.json.decode(entry.value or b"", type=LeaseHolder).instance


def rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return list(conn.execute(sql).fetchall())


@asynccontextmanager
async def catalogs(tmp_path: Path, nats_url: str, *names: str) -> AsyncIterator[list[Instance]]:
    out: list[Instance] = []
    try:
        for name in names:
            await add_staff(tmp_path / name)
            out.append(start_catalog(name, tmp_path, nats_url))
        yield out
    finally:
        for inst in out:
            if inst.session is not None:
                await inst.session.close()
            stop(inst.proc)


async def leader_then_standby(
    tmp_path: Path, nats_url: str, bus: Bus, insts: list[Instance]
) -> tuple[Instance, Instance]:
    """site-a (the only one of ``insts``, started by :func:`catalogs`) takes the lease alone;
    then site-b starts as its standby (added to ``insts``, so ``catalogs`` stops it too)."""
    (a,) = insts
    await eventually(lambda: lease_holder(bus), what="site-a to take the lease", timeout=90)
    await eventually(lambda: role(a), what="site-a's HTTP", timeout=90)
    assert await role(a) == "leader"
    await add_staff(tmp_path / "site-b")
    b = start_catalog("site-b", tmp_path, nats_url)
    insts.append(b)
    await eventually(lambda: role(b), what="site-b's HTTP", timeout=90)
    assert await role(b) == "standby"
    return a, b


@dataclass
class Burst:
    """Writes sent through both instances; what each instance accepted, by request."""

    accepted: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)  # (via, kind, reply)
    refused: Counter[int] = field(default_factory=Counter)
    killed_at: float = 0.0
    after_kill: int = 0
    n: int = 0

    def next_request(self) -> tuple[str, str, dict[str, Any]]:
        self.n += 1
        if self.n % 2:
            # The same display name every time: every registration competes for the next serial.
            return "register", "/api/objects", {
                "customer": CUSTOMER, "display_name": "Vase", "reference_image": f"https://ex.com/r/{self.n}",
            }  # fmt: skip
        return "customer", "/api/customers", {"slug": f"c{self.n}", "name": f"Customer {self.n}"}


async def writer(inst: Instance, burst: Burst, done: asyncio.Event) -> None:
    while not done.is_set():
        kind, path, body = burst.next_request()
        sent = time.monotonic()
        try:
            status, reply = await post(inst, path, body)
        except (aiohttp.ClientError, OSError, TimeoutError):
            return  # the instance died with the request in flight: its outcome is unknown
        if status != 201:
            burst.refused[status] += 1
            assert status == 503, (status, reply)
            assert "no catalog leader reachable" in reply["error"], reply
            continue
        burst.accepted.append((inst.name, kind, {**body, **reply}))
        if burst.killed_at and sent > burst.killed_at:
            burst.after_kill += 1
            if burst.after_kill >= AFTER_KILL:
                done.set()


def missing(db: Path, burst: Burst) -> list[str]:
    """The accepted requests the database does not hold exactly once (empty: all there)."""
    objects = rows(db, "SELECT object_id, reference_image FROM objects")
    by_ref = Counter(ref for _, ref in objects)
    customers = {slug for (slug,) in rows(db, "SELECT slug FROM customers")}
    out = []
    for via, kind, req in burst.accepted:
        if kind == "register":
            if (
                by_ref[req["reference_image"]] != 1
                or (req["object_id"], req["reference_image"]) not in objects
            ):
                out.append(f"{req['object_id']} ({req['reference_image']}, via {via})")
        elif req["slug"] not in customers:
            out.append(f"customer {req['slug']} (via {via})")
    return out


def objects_in(db: Path) -> list[tuple[Any, ...]]:
    return rows(db, "SELECT object_id, reference_image FROM objects ORDER BY object_id")


async def test_kill_9_of_the_writing_catalog_mid_burst_loses_and_doubles_nothing(
    tmp_path: Path, nats_server: NatsServer, bus: Bus
) -> None:
    async with catalogs(tmp_path, nats_server.client_url, "site-a") as insts:
        a, b = await leader_then_standby(tmp_path, nats_server.client_url, bus, insts)
        await sign_in(a)
        assert (await post(a, "/api/customers", {"slug": CUSTOMER, "name": "ACME"}))[0] == 201
        await sign_in(b)

        burst = Burst()
        done = asyncio.Event()
        writers = [asyncio.create_task(writer(i, burst, done)) for i in (a, b, a, b)]

        def both_wrote() -> bool:  # b's through a (forwarded)
            return len(burst.accepted) >= BEFORE_KILL and {v for v, _, _ in burst.accepted} == {
                "site-a",
                "site-b",
            }

        await eventually(both_wrote, what="the first writes through both", timeout=120)
        os.killpg(a.proc.pid, signal.SIGKILL)
        burst.killed_at = time.monotonic()
        a.proc.wait(10)

        async def write_accepted() -> bool:
            """A fresh write through the survivor (a burst writer may still wait on a request it
            had forwarded to the dead leader, up to the forward timeout)."""
            kind, path, body = burst.next_request()
            status, reply = await post(b, path, body)
            if status == 201:
                burst.accepted.append((b.name, kind, {**body, **reply}))
            else:
                assert status == 503 and "no catalog leader reachable" in reply["error"], (status, reply)
                burst.refused[status] += 1
            return status == 201

        await eventually(write_accepted, what="a write through site-b", timeout=120, interval=0.1)
        resumed_s = time.monotonic() - burst.killed_at
        await asyncio.wait_for(asyncio.gather(*writers), 180)
        print(f"writes resumed {resumed_s:.1f} s after the kill; refused meanwhile: {dict(burst.refused)}")
        assert await lease_holder(bus) == "site-b"
        assert await role(b) == "leader"
        # Lease TTL (5 s) + catch-up, with room for a loaded machine.
        assert resumed_s < 30.0

        # Every object id taken once: each registration is the only event on its subject.
        info = await bus.js.stream_info(subjects.OBJECT_EVENTS_STREAM, subjects_filter="f3d.objects.events.>")
        per_subject = info.state.subjects or {}
        assert per_subject and set(per_subject.values()) == {1}, per_subject
        ids = [r["object_id"] for _, kind, r in burst.accepted if kind == "register"]
        assert len(ids) == len(set(ids))

        # The survivor has every accepted request once (it may hold a few more: requests
        # in flight at the kill whose answers never came).
        await eventually(lambda: not missing(b.db(), burst), what="site-b to hold every write", timeout=60)
        # Every registration in the stream, and nothing else, is an object there.
        registered = [s for s in per_subject if not s.startswith("f3d.objects.events.customers.")]
        await eventually(lambda: len(objects_in(b.db())) == len(registered), what="site-b's objects")
        survivors = objects_in(b.db())

        # The killed instance, restarted on its own data, catches up and agrees. (A message it
        # was handed before the kill and never acknowledged comes again after the ack wait.)
        a2 = start_catalog("site-a", tmp_path, nats_server.client_url, port=a.port)
        insts.append(a2)
        await eventually(lambda: role(a2), what="site-a's restart", timeout=90)
        assert await role(a2) == "standby"
        await eventually(lambda: objects_in(a2.db()) == survivors, what="site-a to catch up", timeout=90)
        assert missing(a2.db(), burst) == []


async def test_a_standby_forwards_writes_to_the_leader_and_refuses_them_while_there_is_none(
    tmp_path: Path, nats_server: NatsServer, bus: Bus
) -> None:
    # Someone else holds the lease (an instance that is gone but whose key has not expired):
    # both catalogs stand by.
    kv = await bus.js.key_value(CATALOG_LEASE_BUCKET)
    ghost = LeaseHolder(instance="ghost", host="nowhere", since=time.time())
    revision = await kv.create(KEY, msgspec.json.encode(ghost))
    stop_renewing = asyncio.Event()

    async def renew() -> None:
        nonlocal revision
        while not stop_renewing.is_set():
            revision = await kv.update(KEY, msgspec.json.encode(ghost), last=revision)
            try:
                await asyncio.wait_for(stop_renewing.wait(), 1.0)
            except TimeoutError:
                pass

    renewing = asyncio.create_task(renew())
    async with catalogs(tmp_path, nats_server.client_url, "site-a", "site-b") as (a, b):
        try:
            for inst in (a, b):
                await eventually(lambda i=inst: role(i), what=f"{inst.name}'s HTTP", timeout=90)  # type: ignore[misc]
                await sign_in(inst)
            assert await role(a) == "standby" and await role(b) == "standby"
            h = await health(b)
            assert h is not None and h["leader"] == "ghost", h  # it holds a lease, but answers nothing
            status, reply = await post(b, "/api/customers", {"slug": "acme", "name": "ACME"})
            assert status == 503, reply
            assert reply["error"].startswith("no catalog leader reachable"), reply
            # The CLI's way (micro endpoints, answered by either instance) refuses the same.
            with pytest.raises(ServiceError) as cli_refused:
                await bus.call(CUSTOMER_ADD, CustomerAdd(slug="bycli", name="By CLI"), timeout=30)
            assert cli_refused.value.code == "503"
            assert cli_refused.value.description.startswith("no catalog leader reachable")
        finally:
            stop_renewing.set()
            await renewing
        await kv.delete(KEY, last=revision)  # the ghost's lease ends: one of them leads

        async def leader_known() -> bool:
            return {await role(a), await role(b)} == {"leader", "standby"}

        await eventually(leader_known, what="one leader", timeout=60)
        standby = a if await role(a) == "standby" else b
        status, reply = await post(standby, "/api/customers", {"slug": "acme", "name": "ACME"})
        assert status == 201, reply
        assert reply["slug"] == "acme"
        status, reply = await post(standby, "/api/objects", {"customer": "acme", "display_name": "Blue Vase"})
        assert status == 201, reply
        assert reply["object_id"].startswith("acme-blue-vase-")
        # The same refusal the leader gives, through the standby.
        status, reply = await post(standby, "/api/customers", {"slug": "acme"})
        assert status == 409 and "already exists" in reply["error"], reply
        h = await health(standby)
        assert h is not None and h["forwarded"] == 3, h  # the refusal came back from the leader too
        leader = b if standby is a else a

        async def names_the_leader() -> bool:
            h = await health(standby)
            return bool(h and h["leader"] == leader.name)  # seen on its next claim round

        await eventually(names_the_leader, what="the standby's health to name the leader", timeout=30)
        # Through the CLI's endpoints (either instance answers; a standby forwards).
        for n in range(4):
            added = await bus.call(CUSTOMER_ADD, CustomerAdd(slug=f"bycli{n}", name="By CLI"), timeout=30)
            assert added.slug == f"bycli{n}"
        # And the standby's own copy follows.

        async def shown() -> bool:
            assert standby.session is not None
            async with standby.session.get(f"/api/objects/{reply_id}") as r:
                return r.status == 200

        reply_id = (await post(standby, "/api/objects", {"customer": "acme", "display_name": "Red Vase"}))[1][
            "object_id"
        ]
        await eventually(shown, what="the standby to show the forwarded registration", timeout=30)


async def test_two_writers_never_take_the_same_object_id_or_customer(tmp_path: Path, bus: Bus) -> None:
    """Two catalogs that both believe they lead (an old leader with requests in flight after
    losing the lease), each with a copy that lags the other's writes: JetStream's
    compare-and-set on the first event of a subject keeps ids and customers unique."""
    a = Catalog(await CatalogStore(tmp_path / "a.db").open(), bus, tmp_path / "refs-a")
    b = Catalog(await CatalogStore(tmp_path / "b.db").open(), bus, tmp_path / "refs-b")
    try:
        await a.add_customer("acme", "ACME", "ann")
        with pytest.raises(ActionError) as refused:
            await b.add_customer("acme", "ACME again", "bob")  # b's copy has not seen it
        assert refused.value.status == 409 and "already exists" in str(refused.value)
        # b's consumer delivers the customer, but none of a's registrations (yet).
        await b.store.ingest([CustomerAdded(event_id="customer-acme", customer="acme", name="ACME", ts=1.0)])
        made = await asyncio.gather(
            *(w.register("acme", "Vase", (w is a and "ann") or "bob") for w in (a, b, a, b, a, b))
        )
        ids = [o.object_id for o in made]
        assert len(set(ids)) == len(ids), ids
        info = await bus.js.stream_info(subjects.OBJECT_EVENTS_STREAM, subjects_filter="f3d.objects.events.>")
        per_subject = info.state.subjects or {}
        assert len(per_subject) == len(ids) + 1 and set(per_subject.values()) == {1}, per_subject
    finally:
        await a.store.close()
        await b.store.close()
