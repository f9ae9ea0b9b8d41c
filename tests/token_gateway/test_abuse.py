"""Bans, rate limits, IP lists, the access log in the log server, usage and the OpenAPI document."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import jsonschema
import pytest

from foto3d.libs.bus.connection import Bus
from foto3d.libs.config import Settings
from foto3d.libs.viewer import assets
from foto3d.proto.gateway import (
    ACCESS_LOG_SOURCE_KIND,
    USAGE,
    CredentialKind,
    UsageQuery,
)
from foto3d.proto.logs import LOG_QUERY, LogQuery
from testkit.running import running_services
from testkit.waiting import eventually
from tests.token_gateway.helpers import ORIGIN, Gateway, get
from tests.token_gateway.test_models import OID, bearer


async def test_brute_force_until_banned(gateway: Gateway) -> None:
    await gateway.publish_model(OID)
    good = await gateway.issue("acme")
    url = f"{gateway.url}/v1/models/{OID}"
    async with aiohttp.ClientSession() as s:
        statuses = []
        for i in range(12):
            fake = f"sk_{i:016x}_{'A' * 43}"
            statuses.append((await get(s, url, headers=bearer(fake)))[0])
        assert statuses[:9] == [401] * 9 and statuses[-1] == 403, statuses
        st, body, headers = await get(s, url, headers=bearer(good))  # even a good token, from a banned IP
        assert st == 403 and body["error"] == "banned" and int(headers["Retry-After"]) > 0
    # the ban is kept across a restart of the gateway
    svc = gateway.svc
    assert svc.parts is not None
    bans = await svc.parts.store.active_bans()
    assert "127.0.0.1" in bans


@pytest.fixture
async def strict_gateway(settings: Settings, bus: Bus) -> AsyncIterator[Gateway]:
    settings.raw["token_gateway"] = {
        "port": 0,
        "credential_rate": 1.0,
        "credential_burst": 3,
        "deny_ips": ["10.0.0.0/8"],
        "trusted_proxies": ["127.0.0.1/32"],
        "usage_flush_s": 0.2,
    }
    async with running_services(settings, ["log_collector", "token_gateway"], http=False) as rt:
        yield Gateway(rt=rt, bus=bus, published=settings.data_dir / "published")


async def test_rate_limits_lists_access_log_and_usage(strict_gateway: Gateway) -> None:
    gw = strict_gateway
    await gw.publish_model(OID)
    token = await gw.issue("acme")
    cid = token.split("_")[1]
    url = f"{gw.url}/v1/models/{OID}"
    async with aiohttp.ClientSession() as s:
        codes = [(await get(s, url, headers=bearer(token)))[0] for _ in range(5)]
        assert codes[:3] == [200] * 3 and codes[-1] == 429, codes
        st, body, headers = await get(s, url, headers=bearer(token))
        assert st == 429 and body["error"] == "rate_limited" and "Retry-After" in headers
        # the balancer says the client is in a denied network
        st, body, _ = await get(s, f"{gw.url}/healthz", headers={"X-Forwarded-For": "10.1.2.3"})
        assert st == 403

    async def logged() -> bool:
        reply = await gw.bus.call(
            LOG_QUERY,
            LogQuery(source_kind=ACCESS_LOG_SOURCE_KIND, text=f"cred={cid}", limit=50),
        )
        return len(reply.records) >= 6

    await eventually(logged, "the access log to reach the log server", timeout=10)
    reply = await gw.bus.call(
        LOG_QUERY,
        LogQuery(source_kind=ACCESS_LOG_SOURCE_KIND, object_id=OID, text="429"),
    )
    assert reply.records and all("customer=acme" in r.message for r in reply.records)
    assert all("Bearer" not in r.message and token not in r.message for r in reply.records)
    denied = await gw.bus.call(
        LOG_QUERY, LogQuery(source_kind=ACCESS_LOG_SOURCE_KIND, text="ip=10.1.2.3 403")
    )
    assert len(denied.records) == 1

    async def counted() -> bool:
        r = await gw.bus.call(USAGE, UsageQuery(customer="acme"))
        return bool(r.rows) and r.rows[0].requests == 6

    await eventually(counted, "usage to be counted", timeout=10)
    r = await gw.bus.call(USAGE, UsageQuery(customer="acme"))
    assert r.rows[0].object_id == OID and r.rows[0].denied == 3
    async with aiohttp.ClientSession() as s:
        await eventually(lambda: _refilled(s, url, token), "the bucket to refill", timeout=5.0)
        other = await gw.issue("acme")  # its own bucket
        st, body, _ = await get(s, f"{gw.url}/v1/usage", headers=bearer(other))
        assert st == 200 and body["rows"][0]["customer"] == "acme"


async def _refilled(s: aiohttp.ClientSession, url: str, token: str) -> bool:
    return (await get(s, url, headers=bearer(token)))[0] == 200


async def test_openapi_matches_real_replies(gateway: Gateway) -> None:
    await gateway.publish_model(OID)
    token = await gateway.issue("acme")
    pk = await gateway.issue("acme", CredentialKind.PUBLISHABLE)
    async with aiohttp.ClientSession() as s:
        st, doc, _ = await get(s, f"{gateway.url}/v1/openapi.json")
        assert st == 200 and doc["openapi"].startswith("3.1")
        jsonschema.Draft202012Validator.check_schema({"$defs": doc["components"]["schemas"]})

        def check(path: str, status: int, body: object) -> None:
            op = doc["paths"][path]["get"]
            schema = op["responses"][str(status)]["content"]["application/json"]["schema"]
            resolver_doc = {**schema, "components": doc["components"]}
            jsonschema.validate(body, resolver_doc, cls=jsonschema.Draft202012Validator)

        cases = [
            ("/v1/models/{object_id}", f"/v1/models/{OID}", {"headers": bearer(token)}, 200),
            (
                "/v1/models/{object_id}",
                f"/v1/models/{OID}",
                {"params": {"key": pk}, "headers": {"Origin": ORIGIN}},
                200,
            ),
            ("/v1/models/{object_id}", "/v1/models/acme-nothing-001", {"headers": bearer(token)}, 404),
            ("/v1/models/{object_id}", "/v1/models/bad..id", {"headers": bearer(token)}, 400),
            ("/v1/models/{object_id}", f"/v1/models/{OID}", {}, 401),
            ("/v1/models/{object_id}", f"/v1/models/{OID}", {"params": {"key": pk}}, 403),
            ("/v1/usage", "/v1/usage", {"headers": bearer(token)}, 200),
            ("/healthz", "/healthz", {}, 200),
        ]
        for template, path, kw, want in cases:
            st, body, _ = await get(s, gateway.url + path, **kw)
            assert st == want, (path, st, body)
            check(template, st, body)
        # the document names every route of the API the listener serves (the customer portal's
        # pages, for people in a browser, are not API: test_portal walks those)
        served = {
            r.resource.canonical  # type: ignore[union-attr]
            for r in gateway.svc.listener.app.router.routes()  # type: ignore[union-attr]
            if not r.resource.canonical.startswith("/portal")  # type: ignore[union-attr]
        }
        documented = {p.replace("{version}", "{version}") for p in doc["paths"]} | {"/v1/openapi.json"}
        assert {p.replace(r"{version:\d+}", "{version}") for p in served} <= documented


async def test_allow_list_admits_only_its_networks(settings: Settings, bus: Bus) -> None:
    settings.raw["token_gateway"] = {"port": 0, "allow_ips": ["192.0.2.0/24"]}
    async with running_services(settings, ["token_gateway"], http=False) as rt:
        gw = Gateway(rt=rt, bus=bus, published=settings.data_dir / "published")
        async with aiohttp.ClientSession() as s:
            st, body, _ = await get(s, f"{gw.url}/healthz")
            assert st == 403 and body["error"] == "forbidden"


async def test_bad_settings_stop_the_start_with_a_clear_error(settings: Settings, bus: Bus) -> None:
    for bad, words in [
        ({"link_ttl_s": 5000}, "link_ttl_s must be between"),
        ({"max_link_ttl_s": 7200}, "max_link_ttl_s must be above 0 and at most 3600"),
        ({"deny_ips": ["10.0.0.300/8"]}, "not an IP address or CIDR"),
        ({"link_secret": "short"}, "at least 32 characters"),
        ({"prot": 1}, "prot"),
    ]:
        settings.raw["token_gateway"] = bad
        with pytest.raises(ValueError, match=words):
            async with running_services(settings, ["token_gateway"], http=False):
                pass


async def test_a_taken_port_is_reported(settings: Settings, bus: Bus) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        settings.raw["token_gateway"] = {"port": taken.getsockname()[1]}
        with pytest.raises(OSError, match="token gateway cannot listen"):
            async with running_services(settings, ["token_gateway"], http=False):
                pass


async def test_the_access_log_counts_the_bytes_that_went_out(strict_gateway: Gateway) -> None:
    """The viewer bundle (a file the gateway sends itself, plain or precompressed) is logged with
    the bytes sent, as are the files behind signed links; a 304 sent none."""
    gw = strict_gateway
    b = assets.load_bundle()
    url = f"{gw.url}/viewer/{b.file}"
    sent: list[int] = []
    async with aiohttp.ClientSession(auto_decompress=False) as s:
        for encoding in ("identity", "gzip"):
            async with s.get(url, headers={"Accept-Encoding": encoding}) as r:
                assert r.status == 200
                sent.append(len(await r.read()))
                etag = r.headers["ETag"]
        async with s.get(url, headers={"Accept-Encoding": "gzip", "If-None-Match": etag}) as r:
            assert r.status == 304
    assert sent[0] == b.bytes and sent[1] < b.bytes  # the .gz beside the bundle went out

    async def logged() -> list[str]:
        reply = await gw.bus.call(LOG_QUERY, LogQuery(source_kind=ACCESS_LOG_SOURCE_KIND, limit=50))
        return [r.message for r in reply.records if f"/viewer/{b.file}" in r.message]

    lines = await eventually(lambda: _at_least(logged(), 3), "the bundle's requests in the access log")
    got = sorted(int(m.split(" bytes=", 1)[1].split()[0]) for m in lines)
    assert got == sorted([*sent, 0]), lines


async def _at_least(value: Any, n: int) -> Any:
    got = await value
    return got if len(got) >= n else None
