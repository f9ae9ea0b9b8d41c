"""Every parameter a stranger controls, malformed on purpose: each answer is a 4xx, never a 500.

The requests go over real HTTP to the real gateway with the bytes written exactly as below
(``encoded=True``), so percent-escapes that are not UTF-8 reach the gateway's decoder as a
client on the internet would send them.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from yarl import URL

from foto3d.proto.gateway import CredentialKind
from tests.token_gateway.helpers import ORIGIN, Gateway, get
from tests.token_gateway.test_models import OID, bearer

# Query strings for a file link; "{cid}" and "{exp}" are a real link's values, "{sig}" its signature.
FILE_LINK_QUERIES = [
    "sig=%F1%9A&exp={exp}&cid={cid}",  # not UTF-8
    "sig=%C3%A9%C3%A9&exp={exp}&cid={cid}",  # UTF-8, not ASCII
    "sig=%00&exp={exp}&cid={cid}",
    "sig={sig}&exp=%C2%B2&cid={cid}",  # "²": str.isdigit() says yes, int() says no
    "sig={sig}&exp=%D9%A3&cid={cid}",  # an Arabic-Indic digit
    "sig={sig}&exp=-1&cid={cid}",
    "sig={sig}&exp=1e9&cid={cid}",
    "sig={sig}&exp=999999999999999&cid={cid}",
    "sig={sig}&exp={exp}&cid=%F1%9A",
    "sig={sig}&exp={exp}&cid=%ED%A0%80",  # an encoded lone surrogate
    "sig={sig}&exp={exp}&cid={cid}&scope=%F1",
    "sig={sig}&sig={sig}&exp={exp}&cid={cid}&cid=x",
    "exp={exp}&cid={cid}",
    "",
    "sig=" + "A" * 5000 + "&exp={exp}&cid={cid}",
]


async def test_a_malformed_file_link_is_a_4xx(open_gateway: Gateway) -> None:
    gateway = open_gateway
    await gateway.publish_model(OID)
    token = await gateway.issue("acme")
    async with aiohttp.ClientSession() as s:
        st, body, _ = await get(s, f"{gateway.url}/v1/models/{OID}", headers=bearer(token))
        assert st == 200, body
        link = urlsplit(body["poster_url"])
        q = {k: v[0] for k, v in parse_qs(link.query).items()}
        for template in FILE_LINK_QUERIES:
            query = template.format(**q)
            url = URL(f"{gateway.url}{link.path}?{query}", encoded=True)
            st, reply, _ = await get(s, url)
            assert 400 <= st < 500, (query[:80], st, reply)
            assert isinstance(reply, dict) and reply["error"], reply
        # the good link still works after all that
        st, _, _ = await get(s, URL(f"{gateway.url}{link.path}?{link.query}", encoded=True))
        assert st == 200


# Paths (already percent-encoded) that reach a handler with a malformed id, version, file or pass.
HOSTILE_PATHS = [
    "/v1/models/%F1%9A",
    "/v1/models/acme-desk-lamp-%D9%A3%D9%A3%D9%A3",  # Arabic-Indic digits in the serial
    "/v1/models/" + "a" * 5000,
    "/v1/files/%F1%9A/v1/thumbnail.png?sig=x&exp=1&cid=y",
    "/v1/files/acme-desk-lamp-001/v%D9%A3/thumbnail.png?sig=x&exp=1&cid=y",
    "/v1/files/acme-desk-lamp-001/v" + "9" * 5000 + "/thumbnail.png?sig=x&exp=1&cid=y",
    "/v1/files/acme-desk-lamp-001/v1/%F1%9A?sig=x&exp=1&cid=y",
    "/v1/files/acme-desk-lamp-001/v1/..%2F..%2Fgateway.sqlite?sig=x&exp=1&cid=y",
    "/embed/%F1%9A",
    "/embed-api/%F1%9A/v1/models/acme-desk-lamp-001",
    "/embed-api/%D9%A3.0123456789abcdef..AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/v1/models/acme-desk-lamp-001",
    "/embed-api/1.0123456789abcdef.%F1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/v1/models/acme-desk-lamp-001",
    "/embed-api/1.0123456789abcdef.%2F%2F%2F.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/v1/models/acme-desk-lamp-001",
    "/viewer/%F1%9A",
    "/viewer/..%2F..%2Fpyproject.toml",
    "/v1/usage?since=%D9%A3%D9%A3%D9%A3%D9%A3-%D9%A3%D9%A3-%D9%A3%D9%A3",
    "/v1/usage?object_id=%F1%9A&until=%00",
]


@pytest.mark.parametrize("credential", ["secret", "publishable"])
async def test_malformed_paths_and_queries_are_4xx(open_gateway: Gateway, credential: str) -> None:
    gateway = open_gateway
    await gateway.publish_model(OID)
    if credential == "secret":
        headers = bearer(await gateway.issue("acme"))
        key = ""
    else:
        headers = {"Origin": ORIGIN}
        key = await gateway.issue("acme", kind=CredentialKind.PUBLISHABLE)
    async with aiohttp.ClientSession() as s:
        for path in HOSTILE_PATHS:
            if key:
                path += ("&" if "?" in path else "?") + f"key={key}"
            st, reply, _ = await get(s, URL(gateway.url + path, encoded=True), headers=headers)
            assert 400 <= st < 500, (path[:100], st, reply)


# Headers a stranger sets, each on a request that needs it read.
HOSTILE_HEADERS: list[dict[str, str]] = [
    {"Referer": "http://["},  # urlsplit raises on a bad IPv6 netloc
    {"Referer": "http://[::1"},
    {"Referer": "\u00e9://x"},
    {"Origin": "null", "Referer": "http://[zz]/"},
    {"Authorization": "Bearer \u00e9\u00e9"},
    {"Authorization": "Bearer"},
    {"Authorization": "Basic dXNlcjpwYXNz"},
    {"Authorization": "Bearer sk_0123456789abcdef_" + "\u00e9" * 43},
    {"X-Forwarded-For": "\u00e9, [::1"},
]


async def test_hostile_headers_are_4xx(open_gateway: Gateway) -> None:
    gateway = open_gateway
    await gateway.publish_model(OID)
    key = await gateway.issue("acme", kind=CredentialKind.PUBLISHABLE)
    async with aiohttp.ClientSession() as s:
        for h in HOSTILE_HEADERS:
            for url in (
                f"{gateway.url}/v1/models/{OID}?key={key}",
                f"{gateway.url}/embed/{OID}?key={key}",
                f"{gateway.url}/v1/models/{OID}",
            ):
                if "Authorization" in h and "key=" in url:
                    continue
                raw = {k: v.encode("utf-8").decode("latin-1") for k, v in h.items()}
                st, reply, _ = await get(s, url, headers=raw)
                assert 400 <= st < 500, (h, url, st, reply)
