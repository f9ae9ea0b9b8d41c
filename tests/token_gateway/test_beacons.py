"""The viewer's beacon: real gateway, real HTTP, real sqlite; what is taken, what is refused."""

from __future__ import annotations

import asyncio
import math
import random
import sqlite3
import time
from datetime import UTC, datetime
from typing import Any

import aiohttp
import msgspec
import pytest

from foto3d.cli.main import main
from foto3d.proto import subjects
from foto3d.proto.analytics import (
    ANALYTICS,
    MAX_BEACON_BYTES,
    AnalyticsQuery,
    AnalyticsReply,
    BeaconCount,
    BeaconDelta,
)
from foto3d.proto.gateway import ACCESS_LOG_SOURCE_KIND, TOKENS_REVOKE, CredentialKind, RevokeRequest
from foto3d.proto.logs import LOG_QUERY, LogQuery
from foto3d.services.token_gateway import embed, sketch
from foto3d.services.token_gateway.abuse import client_network
from foto3d.services.token_gateway.beacons import device_class
from testkit.waiting import eventually
from tests.token_gateway.helpers import ORIGIN, Gateway

OID = "acme-desk-lamp-001"
IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"


def beacon(*events: dict[str, Any], object_id: str = OID, device: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"object_id": object_id, "events": list(events)}
    if device:
        body["device"] = device
    return body


async def post(
    s: aiohttp.ClientSession,
    gw: Gateway,
    key: str,
    body: Any,
    origin: str = ORIGIN,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any], dict[str, str]]:
    data = body if isinstance(body, bytes) else msgspec.json.encode(body)
    hdrs = {"Origin": origin, "Content-Type": "text/plain;charset=UTF-8", **(headers or {})}
    async with s.post(f"{gw.url}/v1/beacon", params={"key": key}, data=data, headers=hdrs) as r:
        return r.status, msgspec.json.decode(await r.read()), dict(r.headers)


async def analytics(gw: Gateway, **kw: Any) -> AnalyticsReply:
    return await gw.bus.call(ANALYTICS, AnalyticsQuery(customer="acme", **kw))


async def ready(s: aiohttp.ClientSession, gw: Gateway, key: str) -> None:
    """Wait until the gateway shows the model to the key (asking the model API, whose bucket is
    not the beacons'), then send one view from a desktop."""

    async def shown() -> bool:
        async with s.get(f"{gw.url}/v1/models/{OID}", params={"key": key}, headers={"Origin": ORIGIN}) as r:
            return r.status == 200

    await eventually(shown, "the gateway shows the model")
    st, body, _ = await post(s, gw, key, beacon({"kind": "view"}, device="desktop"))
    assert st == 202, body


async def total_views(gw: Gateway, want: int) -> AnalyticsReply:
    async def arrived() -> AnalyticsReply | None:
        reply = await analytics(gw)
        return reply if reply.total is not None and reply.total.views >= want else None

    reply: AnalyticsReply = await eventually(arrived, f"{want} view(s) summed")
    return reply


async def test_an_accepted_beacon_is_summed_per_day_model_domain_and_device(
    beacon_gateway: Gateway, capsys: pytest.CaptureFixture[str]
) -> None:
    gw = beacon_gateway
    await gw.publish_model(OID)
    key = await gw.issue("acme", kind=CredentialKind.PUBLISHABLE)
    async with aiohttp.ClientSession() as s:
        await ready(s, gw, key)
        # the page gives no device class: the user agent's guess is kept, never the agent
        st, body, headers = await post(
            s,
            gw,
            key,
            beacon(
                {"kind": "view"},
                {"kind": "poster", "ms": 180},
                {"kind": "first_frame", "ms": 1200},
                {"kind": "interaction", "action": "orbit"},
                {"kind": "interaction", "action": "orbit"},
                {"kind": "interaction", "action": "zoom"},
                {"kind": "interaction", "action": "fullscreen"},
                {"kind": "time_in_view", "ms": 8000},
                {"kind": "error", "code": "webgl_lost"},
            ),
            headers={"User-Agent": IPHONE},
        )
        assert st == 202, body
        assert body == {"accepted": 9}
        assert "Set-Cookie" not in headers
        assert headers["Access-Control-Allow-Origin"] == ORIGIN
    reply = await total_views(gw, 2)
    rows = {r.device: r for r in reply.rows}
    assert set(rows) == {"desktop", "phone"}
    phone = rows["phone"]
    assert (phone.object_id, phone.domain, phone.views) == (OID, "shop.example.com", 1)
    assert (phone.orbit, phone.zoom, phone.fullscreen, phone.time_in_view_ms, phone.errors) == (
        2,
        1,
        1,
        8000,
        1,
    )
    assert phone.first_frame.count == 1 and phone.first_frame.p50 is not None
    assert abs(phone.first_frame.p50 - 1200) <= 1200 * sketch.RELATIVE_ERROR
    assert phone.poster.count == 1 and rows["desktop"].first_frame.count == 0
    assert rows["desktop"].first_frame.p50 is None
    # what sqlite holds: sums and sketches, nothing about the visitor
    db = sqlite3.connect(gw.rt.settings.data_dir / "token_gateway" / "gateway.sqlite")
    try:
        columns = [r[1] for r in db.execute("PRAGMA table_info(beacons)")]
        dump = "\n".join(str(r) for r in db.execute("SELECT * FROM beacons"))
    finally:
        db.close()
    assert not {"ip", "user_agent", "ua", "cookie"} & set(columns)
    assert "127.0.0" not in dump and "iPhone" not in dump
    # the CLI prints the table
    assert gw.rt.settings.nats_urls
    system = ["--nats", gw.rt.settings.nats_urls[0], "--data", str(gw.rt.settings.data_dir)]
    code = await asyncio.to_thread(main, ["analytics", "acme", *system, "--days", "2"])
    out, _ = capsys.readouterr()
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].startswith("DAY") and len(lines) == 4  # header, two rows, the total
    assert "shop.example.com" in out and "phone" in out and lines[-1].startswith("total")


async def test_refused_beacons_say_why_and_store_nothing(beacon_gateway: Gateway) -> None:
    gw = beacon_gateway
    await gw.publish_model(OID)
    await gw.publish_model("acme-chair-001")
    key = await gw.issue("acme", kind=CredentialKind.PUBLISHABLE)
    other_key = await gw.issue("acme", kind=CredentialKind.PUBLISHABLE, models=["acme-chair-001"])
    secret = await gw.issue("acme")
    good = beacon({"kind": "view"}, {"kind": "first_frame", "ms": 900}, device="phone")
    async with aiohttp.ClientSession() as s:
        await ready(s, gw, key)
        await total_views(gw, 1)

        async def refused(what: str, want: int, words: str, **kw: Any) -> None:
            st, body, headers = await post(s, gw, **kw)
            assert st == want, (what, st, body)
            assert words in body["message"], (what, body)
            assert "Set-Cookie" not in headers

        forged = key[:-4] + ("aaaa" if not key.endswith("aaaa") else "bbbb")
        await refused("unknown key", 401, "not valid", key=forged, body=good)
        await refused("no key", 401, "credential is needed", key="", body=good)
        await refused(
            "wrong origin", 403, "not allowed on this site", key=key, body=good, origin="https://evil.example"
        )
        await refused("key for another model", 404, "no such model", key=other_key, body=good)
        await refused(
            "unknown model", 404, "no such model", key=key, body={**good, "object_id": "acme-vase-001"}
        )
        await refused("not JSON", 400, "not JSON", key=key, body=b"{nope")
        await refused("unknown kind", 400, "not a beacon", key=key, body=beacon({"kind": "purchase"}))
        await refused("no events", 400, "events", key=key, body=beacon())
        await refused("negative time", 400, "ms", key=key, body=beacon({"kind": "first_frame", "ms": -5}))
        await refused("extra field", 400, "not a beacon", key=key, body={**good, "user_agent": "x"})
        await refused(
            "too many events", 400, "events", key=key, body=beacon(*[{"kind": "view"}] * 65, device="phone")
        )
        big = msgspec.json.encode({**good, "pad": "x" * MAX_BEACON_BYTES})
        await refused("oversize body", 413, f"at most {MAX_BEACON_BYTES} bytes", key=key, body=big)
        await refused("over the listener's limit", 413, "limited to", key=key, body=b"x" * 20_000)
        # a secret token is for servers; it may not send beacons (and never rides in a URL)
        async with s.post(
            f"{gw.url}/v1/beacon",
            data=msgspec.json.encode(good),
            headers={"Authorization": f"Bearer {secret}", "Origin": ORIGIN},
        ) as r:
            assert r.status == 403 and "publishable key" in (await r.json())["message"]
        # one good beacon after them all: once it is summed, anything a refusal had added would be too
        st, _, _ = await post(s, gw, key, good)
        assert st == 202
    reply = await total_views(gw, 2)
    assert reply.total is not None
    assert reply.total.views == 2 and reply.total.first_frame.count == 1
    assert {r.object_id for r in reply.rows} == {OID}


async def test_beacons_are_rate_limited_per_key_and_client_network(beacon_gateway: Gateway) -> None:
    gw = beacon_gateway
    await gw.publish_model(OID)
    key = await gw.issue("acme", kind=CredentialKind.PUBLISHABLE)
    other = await gw.issue("acme", kind=CredentialKind.PUBLISHABLE)
    async with aiohttp.ClientSession() as s:
        await ready(s, gw, key)  # takes one of the burst of 20
        statuses = [(await post(s, gw, key, beacon({"kind": "view"}, device="tablet")))[0] for _ in range(25)]
        taken = statuses.count(202)
        assert taken == 19 and statuses[taken:] == [429] * (25 - taken), statuses
        st, body, headers = await post(s, gw, key, beacon({"kind": "view"}, device="tablet"))
        assert st == 429 and "too many beacons" in body["message"] and int(headers["Retry-After"]) >= 1
        # another key from the same network has a bucket of its own
        st, _, _ = await post(s, gw, other, beacon({"kind": "view"}, device="tablet"))
        assert st == 202
    reply = await total_views(gw, 1 + taken + 1)
    assert reply.total is not None and reply.total.views == 1 + taken + 1  # refused ones: not counted


async def test_first_frame_percentiles_on_known_inputs(beacon_gateway: Gateway) -> None:
    """1,000 first frames of 1…1,000 ms over two devices, in shuffled beacons: the total's
    percentiles (sketches added across rows) are the exact nearest-rank ones within the sketch's error."""
    gw = beacon_gateway
    await gw.publish_model(OID)
    keys = [await gw.issue("acme", kind=CredentialKind.PUBLISHABLE) for _ in range(3)]
    values = list(range(1, 1001))
    random.Random(7).shuffle(values)
    async with aiohttp.ClientSession() as s:
        await ready(s, gw, keys[0])
        for i in range(0, len(values), 50):
            events = [{"kind": "first_frame", "ms": v} for v in values[i : i + 50]]
            device = "phone" if i % 100 else "desktop"
            st, body, _ = await post(s, gw, keys[i // 50 % 3], beacon(*events, device=device))
            assert st == 202, body

    async def measured() -> AnalyticsReply | None:
        reply = await analytics(gw)
        return reply if reply.total is not None and reply.total.first_frame.count >= 1000 else None

    reply = await eventually(measured, "1,000 first frames summed")
    assert reply.total is not None
    ff = reply.total.first_frame
    assert ff.count == 1000
    for got, exact in ((ff.p50, 500), (ff.p75, 750), (ff.p95, 950)):
        assert got is not None and abs(got - exact) <= exact * sketch.RELATIVE_ERROR + 1, (got, exact)
    # each device's row holds its own half
    assert sorted(r.first_frame.count for r in reply.rows) == [500, 500]


def test_sketch_quantiles_and_merging() -> None:
    rng = random.Random(3)
    samples = [rng.randint(0, 120_000) for _ in range(5000)]
    whole: dict[int, int] = {}
    a: dict[int, int] = {}
    b: dict[int, int] = {}
    for i, v in enumerate(samples):
        sketch.add(whole, v)
        sketch.add(a if i % 2 else b, v)
    sketch.merge(a, b)
    assert a == whole
    ordered = sorted(samples)
    qs = (0.01, 0.5, 0.75, 0.95, 0.99, 1.0)
    for q, got in zip(qs, sketch.quantiles(whole, qs), strict=True):
        exact = ordered[max(1, math.ceil(q * len(ordered))) - 1]
        assert got is not None and abs(got - exact) <= exact * sketch.RELATIVE_ERROR + 1, (q, got, exact)
    assert sketch.quantiles({}, (0.5,)) == [None]
    assert sketch.quantiles({0: 3}, (0.5,)) == [0]
    assert len(whole) <= 140


def test_client_network_and_device_class() -> None:
    assert client_network("203.0.113.77") == "203.0.113.0/24"
    assert client_network("2001:db8:1234:5678::1") == "2001:db8:1234::/48"
    assert client_network("not an ip") == "-"
    assert device_class("tablet", {"User-Agent": IPHONE}) == "tablet"
    assert device_class(None, {"User-Agent": IPHONE}) == "phone"
    assert device_class(None, {"Sec-CH-UA-Mobile": "?1"}) == "phone"
    assert device_class(None, {"User-Agent": "Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X)"}) == "tablet"
    assert device_class(None, {"User-Agent": "Mozilla/5.0 (Linux; Android 14; SM-X710)"}) == "tablet"
    assert device_class(None, {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64)"}) == "desktop"


async def test_the_embed_pages_viewer_sends_its_beacon_with_the_pages_pass(beacon_gateway: Gateway) -> None:
    gw = beacon_gateway
    await gw.publish_model(OID)
    key = await gw.issue("acme", kind=CredentialKind.PUBLISHABLE)
    parts = gw.svc.parts
    assert parts is not None
    key_id = key.split("_")[1]
    now = int(time.time())
    fresh = embed.issue(parts.signer, OID, ORIGIN, key_id, now + 300)
    stale = embed.issue(parts.signer, OID, ORIGIN, key_id, now - 3600)  # the visitor stayed an hour
    too_old = embed.issue(parts.signer, OID, ORIGIN, key_id, now - 2 * 86400)
    other_model = embed.issue(parts.signer, "acme-chair-001", ORIGIN, key_id, now + 300)
    body = msgspec.json.encode(beacon({"kind": "view"}, {"kind": "first_frame", "ms": 700}, device="phone"))
    async with aiohttp.ClientSession() as s:
        await ready(s, gw, key)

        async def send(p: str) -> tuple[int, Any]:
            async with s.post(f"{gw.url}/embed-api/{p}/v1/beacon", data=body) as r:
                return r.status, await r.json()

        assert (await send(fresh))[0] == 202
        assert (await send(stale))[0] == 202
        for p, words in ((too_old, "not valid for this model"), (other_model, "not valid for this model")):
            st, err = await send(p)
            assert st == 403 and words in err["message"], err
        st, err = await send("nonsense")
        assert st == 403 and "not valid" in err["message"]
    reply = await total_views(gw, 3)
    phone = next(r for r in reply.rows if r.device == "phone")
    assert (phone.views, phone.domain, phone.first_frame.count) == (2, "shop.example.com", 2)


async def test_a_revoked_keys_embed_pass_answers_neither_model_nor_beacon(beacon_gateway: Gateway) -> None:
    gw = beacon_gateway
    await gw.publish_model(OID)
    key = await gw.issue("acme", kind=CredentialKind.PUBLISHABLE)
    parts = gw.svc.parts
    assert parts is not None
    key_id = key.split("_")[1]
    p = embed.issue(parts.signer, OID, ORIGIN, key_id, int(time.time()) + 300)
    model_url = f"{gw.url}/embed-api/{p}/v1/models/{OID}"
    body = msgspec.json.encode(beacon({"kind": "view"}, device="phone"))
    async with aiohttp.ClientSession() as s:
        await ready(s, gw, key)
        async with s.get(model_url) as r:
            assert r.status == 200
        await gw.bus.call(TOKENS_REVOKE, RevokeRequest(credential_id=key_id))

        async def refused() -> Any:
            async with s.get(model_url) as r:
                return r.status == 403 and "no longer valid" in (await r.json())["message"]

        await eventually(refused, "the revoked key's pass to be refused")
        async with s.post(f"{gw.url}/embed-api/{p}/v1/beacon", data=body) as r:
            err = await r.json()
            assert r.status == 403 and "no longer valid" in err["message"], err


async def test_access_records_of_beacons_keep_the_clients_network_not_its_address(
    beacon_gateway: Gateway,
) -> None:
    gw = beacon_gateway
    await gw.publish_model(OID)
    key = await gw.issue("acme", kind=CredentialKind.PUBLISHABLE)
    client = {"X-Forwarded-For": "198.51.100.77"}  # the balancer (a trusted proxy) says so
    async with aiohttp.ClientSession() as s:
        await ready(s, gw, key)
        good = beacon({"kind": "view"}, device="phone")
        assert (await post(s, gw, key, good, headers=client))[0] == 202
        assert (await post(s, gw, key, good, origin="https://evil.example", headers=client))[0] == 403
        assert (await post(s, gw, key, b"x" * 20_000, headers=client))[0] == 413  # refused by the guard
        # a model lookup from the same client is logged with its address, as before
        async with s.get(
            f"{gw.url}/v1/models/{OID}", params={"key": key}, headers={"Origin": ORIGIN, **client}
        ) as r:
            assert r.status == 200

    async def logged() -> list[str] | None:
        reply = await gw.bus.call(LOG_QUERY, LogQuery(source_kind=ACCESS_LOG_SOURCE_KIND, text="198.51.100"))
        lines = [r.message for r in reply.records]
        return lines if len(lines) >= 4 else None

    lines = await eventually(logged, "the access records of the four requests")
    beacons = [m for m in lines if "/v1/beacon" in m]
    assert len(beacons) == 3 and all("ip=198.51.100.0/24" in m for m in beacons), beacons
    assert not any("198.51.100.77" in m for m in beacons)
    assert any("/v1/models/" in m and "ip=198.51.100.77" in m for m in lines)


async def test_days_past_the_retention_are_dropped(beacon_gateway: Gateway) -> None:
    """A delta that arrives late with an old day (an instance that was away a long time)."""
    gw = beacon_gateway
    old_day = "2020-01-01"
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    counts = [
        BeaconCount(day=d, customer="acme", object_id=OID, domain="shop.example.com", device="phone", views=1)
        for d in (old_day, today)
    ]
    delta = BeaconDelta(delta_id="late-1", instance="away", counts=counts)
    await gw.bus.publish(subjects.gateway_usage("away"), delta, msg_id=delta.delta_id)
    await total_views(gw, 1)
    db_path = gw.rt.settings.data_dir / "token_gateway" / "gateway.sqlite"

    def days() -> list[str]:
        db = sqlite3.connect(db_path)
        try:
            return [r[0] for r in db.execute("SELECT day FROM beacons ORDER BY day")]
        finally:
            db.close()

    await eventually(lambda: days() == [today], "the old day to be dropped")
