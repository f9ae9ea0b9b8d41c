"""Losing the catalog's database: it comes back from the event streams, reply for reply.

A catalog is filled through its real HTTP API (customers, objects with and without a
reference image, a trained and approved object, a disabled one), every API reply and
page is recorded, the database is deleted, and the catalog rebuilds it, once at its own
start and once through `foto3d objects rebuild`; the replies must be the same, customers'
names and who added them included (they are events too), and so must the subscription and
webhook books and the log of a webhook delivered to a real receiver.
"""

from __future__ import annotations

import asyncio
import base64
import re
import sqlite3
import sys
import time
from asyncio.subprocess import PIPE, STDOUT
from pathlib import Path
from typing import Any

from foto3d.libs.bus.connection import Bus
from foto3d.libs.config import Settings
from foto3d.libs.nats_server import NatsServer
from foto3d.proto.objects import STATUS, LiveStatus, StatusRequest
from foto3d.proto.subscriptions import SUBSCRIPTION_LIST, SUBSCRIPTION_SET, SubscriptionQuery, SubscriptionSet
from foto3d.proto.webhooks import (
    WEBHOOK_ADD,
    WEBHOOK_DELIVERIES,
    WEBHOOK_LIST,
    WEBHOOK_REMOVE,
    CustomerRef,
    EndpointAdd,
    EndpointRef,
)
from testkit.running import running_services
from testkit.waiting import eventually
from tests.catalog.helpers import APPROVE, call, make_artifacts, signed_in, train
from tests.catalog.test_webhooks import Receiver

# A 1x1 PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
DAY = 86400.0
# Per-request tokens in forms, and "N s/min ago" renderings that move with the clock.
VOLATILE = re.compile(r'name="csrf[^"]*" value="[^"]*"|content="[0-9a-f]{32,}"|\d+ (?:s|min|h|d)\b')


async def snapshot(rt: Any, settings: Settings, oids: list[str]) -> dict[str, Any]:
    s = await signed_in(rt, settings)
    out: dict[str, Any] = {}
    async with s:
        urls = ["/api/customers", "/api/board", "/api/objects?customer=acme", "/api/objects?stage=in_review"]
        urls += [f"/api/objects?limit=2&page={p}" for p in (1, 2, 3, 4)]
        for oid in oids:
            urls += [f"/api/objects/{oid}", f"/api/objects/{oid}/timeline"]
        for url in urls:
            status, body = await call(s, "GET", url)
            out[url] = (status, body)
        for page in ["/objects", "/objects?customer=acme&page=2", "/board", *(f"/objects/{o}" for o in oids)]:
            async with s.get(page) as r:
                out[page] = (r.status, VOLATILE.sub("~", await r.text()))
        async with s.get(f"/objects/{oids[0]}/reference") as r:
            out["image"] = (r.status, await r.read())
    return out


def comparable(snap: dict[str, Any]) -> dict[str, Any]:
    """Everything but the board's clock."""
    rest = dict(snap)
    status, board = snap["/api/board"]
    rest["/api/board"] = (status, {k: v for k, v in board.items() if k != "now"})
    return rest


def differences(a: dict[str, Any], b: dict[str, Any]) -> str:
    import difflib

    out = []
    for k in a:
        if a[k] != b.get(k):
            x, y = str(a[k][1]).splitlines(), str(b.get(k, (0, ""))[1]).splitlines()
            out.append(k + "\n" + "\n".join(list(difflib.unified_diff(x, y, lineterm="", n=0))[:12]))
    return "\n".join(out)


def delete_database(settings: Settings) -> None:
    """The database and the subscription and webhook books (each its own file)."""
    folder = settings.data_dir / "catalog"
    for name in ("catalog.db", "subscriptions.db", "webhooks.db"):
        for suffix in ("", "-wal", "-shm"):
            (folder / f"{name}{suffix}").unlink(missing_ok=True)


async def set_books(bus: Bus) -> None:
    """Subscriptions (one changed twice) and endpoints (one removed) through the CRM and staff APIs."""
    now = time.time()
    for sub_id, revision, end in (
        ("crm-1", 1, now + 30 * DAY),
        ("crm-1", 2, now + 60 * DAY),
        ("crm-2", 1, now + 90 * DAY),
    ):
        req = SubscriptionSet(subscription_id=sub_id, customer="acme", start=now, end=end, revision=revision)
        await bus.call(SUBSCRIPTION_SET, req, timeout=30)
    kept = await bus.call(
        WEBHOOK_ADD, EndpointAdd(customer="acme", url="https://acme.example/hooks"), timeout=30
    )
    gone = await bus.call(
        WEBHOOK_ADD, EndpointAdd(customer="globex", url="https://globex.example/h"), timeout=30
    )
    await bus.call(WEBHOOK_REMOVE, EndpointRef(endpoint_id=gone.endpoint_id), timeout=30)
    assert kept.secret


async def deliver_one(bus: Bus, object_id: str) -> None:
    """A webhook delivered to a real receiver (its log row is final: a restart changes nothing)."""
    rx = Receiver()
    await rx.start()
    try:
        hook = await bus.call(WEBHOOK_ADD, EndpointAdd(customer="acme", url=rx.url), timeout=30)
        disable = StatusRequest(object_id=object_id, status=LiveStatus.DISABLED, reason="pulled")
        await bus.call(STATUS, disable, timeout=30)

        async def delivered() -> bool:
            return [d.state for d in await delivered_to(bus, hook.endpoint_id)] == ["delivered"]

        await eventually(delivered, "the webhook delivered to the receiver", timeout=60)
    finally:
        await rx.stop()


async def delivered_to(bus: Bus, endpoint_id: str) -> list[Any]:
    log = await bus.call(WEBHOOK_DELIVERIES, CustomerRef(customer="acme"), timeout=30)
    return [d for d in log if d.endpoint_id == endpoint_id]


async def book_answers(bus: Bus, settings: Settings) -> dict[str, Any]:
    """What the books answer, and their rows (the endpoints' secrets and the history included)."""
    folder = settings.data_dir / "catalog"
    with sqlite3.connect(folder / "subscriptions.db") as conn:
        history = conn.execute(
            "SELECT subscription_id, ts, actor, outcome, revision, body FROM history ORDER BY ts"
        )
        history_rows = history.fetchall()
    with sqlite3.connect(folder / "webhooks.db") as conn:
        endpoints = conn.execute("SELECT * FROM endpoints ORDER BY endpoint_id").fetchall()
    webhooks = await bus.call(WEBHOOK_LIST, CustomerRef(), timeout=30)
    # The delivery log of the receiver's endpoint (the others' rows change with every retry).
    receiver = [e.endpoint_id for e in webhooks if e.url.startswith("http://127.0.0.1")]
    return {
        "subscriptions": await bus.call(SUBSCRIPTION_LIST, SubscriptionQuery(), timeout=30),
        "webhooks": webhooks,
        "delivered": [d for e in receiver for d in await delivered_to(bus, e)],
        "history": history_rows,
        "endpoints": endpoints,
    }


async def test_a_deleted_catalog_database_is_rebuilt_from_the_streams_with_the_same_replies(
    settings: Settings, bus: Bus, nats_server: NatsServer, tmp_path: Path
) -> None:
    async with running_services(settings, ["catalog"]) as rt:
        s = await signed_in(rt, settings)
        async with s:
            for slug, name in (("acme", "ACME Corporation"), ("globex", "Globex")):
                assert (await call(s, "POST", "/api/customers", {"slug": slug, "name": name}))[0] == 201
            oids: list[str] = []
            for customer, name in (
                ("acme", "Desk lamp"),
                ("acme", "Desk lamp"),
                ("acme", "Vase"),
                ("globex", "Chair"),
            ):
                body: dict[str, Any] = {"customer": customer, "display_name": name}
                if not oids:
                    body |= {
                        "reference_image_b64": base64.b64encode(PNG).decode(),
                        "reference_image_name": "a.png",
                    }
                st, obj = await call(s, "POST", "/api/objects", body)
                assert st == 201, obj
                oids.append(obj["object_id"])
            await train(bus, oids[0], make_artifacts(tmp_path / "a"))
            await train(bus, oids[2], make_artifacts(tmp_path / "b"))

            async def in_review() -> bool:
                for oid in (oids[0], oids[2]):
                    _, o = await call(s, "GET", f"/api/objects/{oid}")
                    if o["stage"] != "in_review":
                        return False
                return True

            await eventually(in_review, "both trained objects in review")
            st, body = await call(s, "POST", f"/api/objects/{oids[0]}/review", APPROVE)
            assert st == 200, body
            st, body = await call(
                s, "POST", f"/api/objects/{oids[3]}/status", {"status": "disabled", "reason": "test"}
            )
            assert st == 200, body
        await set_books(bus)
        await deliver_one(bus, oids[1])
        before = await snapshot(rt, settings, oids)
        books_before = await book_answers(bus, settings)
    assert len(books_before["subscriptions"]) == 2 and len(books_before["endpoints"]) == 3
    assert [d.state for d in books_before["delivered"]] == ["delivered"]
    assert len(books_before["history"]) == 3
    assert before["/api/objects/" + oids[0]][1]["stage"] == "approved"
    assert before["image"] == (200, PNG)

    # The database is lost; the catalog notices at start and reads the streams again.
    delete_database(settings)
    async with running_services(settings, ["catalog"]) as rt:
        svc = rt.services[0]
        report = getattr(svc, "last_rebuild", None)
        assert report is not None and report.objects == 4 and not report.missing_images
        after = await snapshot(rt, settings, oids)
        assert await book_answers(bus, settings) == books_before
    assert comparable(after) == comparable(before), differences(comparable(before), comparable(after))
    names = {(c["slug"], c["name"], c["actor"]) for c in after["/api/customers"][1]}
    assert names == {("acme", "ACME Corporation", "rev"), ("globex", "Globex", "rev")}, names

    # The runbook's command, on a stopped catalog.
    delete_database(settings)
    argv = [sys.executable, "-m", "foto3d.cli.main", "objects", "rebuild", "--replace"]
    argv += ["--nats", nats_server.client_url, "--data", str(settings.data_dir)]
    proc = await asyncio.create_subprocess_exec(*argv, stdout=PIPE, stderr=STDOUT)
    out = (await asyncio.wait_for(proc.communicate(), 120))[0].decode()
    assert proc.returncode == 0, out
    assert "4 objects" in out, out
    async with running_services(settings, ["catalog"]) as rt:
        assert getattr(rt.services[0], "last_rebuild", None) is None  # it found the rebuilt database
        again = await snapshot(rt, settings, oids)
        assert await book_answers(bus, settings) == books_before
    assert comparable(again) == comparable(before), differences(comparable(before), comparable(again))
