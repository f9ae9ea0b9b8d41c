"""The test S3 endpoint (``testkit.cors_s3``) enforces bucket CORS as S3 documents it.

The browser test of presigned links relies on it: a preflight is matched against the bucket's
CORSRules (origin, with one ``*`` wildcard; method; every requested header) and refused with
403 when no rule matches or the bucket has none; ``Access-Control-Allow-Origin`` comes only for
an allowed origin, with the rule's ExposeHeaders and MaxAgeSeconds. moto's server, by contrast,
echoes any origin on a GET: a browser on it would fetch through a missing rule.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from testkit.cors_s3 import CorsS3Server
from testkit.servers import MotoServer

BUCKET = "models"
KEY = "site/models/acme/x/v1/x.spz"
SHOP = "https://shop.example.com"
RULES: list[Any] = [
    {
        "ID": "viewer",
        "AllowedOrigins": [SHOP, "https://*.staging.example.org"],
        "AllowedMethods": ["GET", "HEAD"],
        "AllowedHeaders": ["range", "x-amz-*"],
        "ExposeHeaders": ["Content-Length", "ETag"],
        "MaxAgeSeconds": 600,
    }
]


def _link(client: Any) -> str:
    client.create_bucket(Bucket=BUCKET)
    client.put_object(Bucket=BUCKET, Key=KEY, Body=b"spz" * 100)
    return str(client.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": KEY}))


async def _ask(url: str, method: str, origin: str, **headers: str) -> tuple[int, dict[str, str]]:
    async with (
        aiohttp.ClientSession() as s,
        s.request(method, url, headers={"Origin": origin, **headers}) as r,
    ):
        await r.read()
        return r.status, {
            k.lower(): v for k, v in r.headers.items() if k.lower().startswith("access-control-")
        }


async def _preflight(
    url: str, origin: str, method: str = "GET", headers: str = ""
) -> tuple[int, dict[str, str]]:
    extra = {"Access-Control-Request-Method": method}
    if headers:
        extra["Access-Control-Request-Headers"] = headers
    return await _ask(url, "OPTIONS", origin, **extra)


async def test_no_rule_no_cross_origin_read(cors_s3_server: CorsS3Server) -> None:
    url = _link(cors_s3_server.client())
    status, cors = await _ask(url, "GET", SHOP)
    assert (
        status == 200 and "access-control-allow-origin" not in cors
    )  # the bytes come, the browser drops them
    assert (await _preflight(url, SHOP))[0] == 403


async def test_preflights_and_reads_are_matched_against_the_rules(cors_s3_server: CorsS3Server) -> None:
    client = cors_s3_server.client()
    url = _link(client)
    client.put_bucket_cors(Bucket=BUCKET, CORSConfiguration={"CORSRules": RULES})
    assert (
        client.get_bucket_cors(Bucket=BUCKET)["CORSRules"][0]["AllowedOrigins"] == RULES[0]["AllowedOrigins"]
    )

    status, cors = await _preflight(url, SHOP, headers="Range")
    assert status == 200
    assert cors["access-control-allow-origin"] in (SHOP, "*")  # S3 echoes the origin; either lets it in
    assert {m.strip() for m in cors["access-control-allow-methods"].split(",")} == {"GET", "HEAD"}
    assert cors["access-control-allow-headers"].lower() == "range"  # only what was asked for
    assert (await _preflight(url, "https://a.staging.example.org"))[0] == 200  # the wildcard origin
    assert (await _preflight(url, "https://x.amz.staging.example.org", headers="x-amz-date"))[0] == 200

    refused = [
        await _preflight(url, "https://other-shop.example.net"),  # an origin no rule names
        await _preflight(url, "http://shop.example.com"),  # another scheme is another origin
        await _preflight(url, "https://staging.example.org"),  # the wildcard needs its dot
        await _preflight(url, SHOP, method="PUT"),  # a method the rule does not allow
        await _preflight(url, SHOP, headers="range, authorization"),  # one header it does not
    ]
    assert [s for s, _ in refused] == [403] * len(refused)
    assert all("access-control-allow-origin" not in c for _, c in refused)

    status, cors = await _ask(url, "GET", SHOP)
    assert status == 200 and cors["access-control-allow-origin"] == SHOP
    assert {h.strip() for h in cors["access-control-expose-headers"].split(",")} == {"Content-Length", "ETag"}
    assert cors["access-control-max-age"] == "600"
    status, cors = await _ask(url, "GET", "https://other-shop.example.net")
    assert status == 200 and "access-control-allow-origin" not in cors

    client.delete_bucket_cors(Bucket=BUCKET)
    assert (await _preflight(url, SHOP))[0] == 403


async def test_moto_would_let_any_origin_read(moto: MotoServer) -> None:
    """Why the browser test needs the endpoint above: on moto a missing rule goes unnoticed."""
    client = moto.client()
    url = _link(client)
    client.put_bucket_cors(Bucket=BUCKET, CORSConfiguration={"CORSRules": RULES})
    _, cors = await _ask(url, "GET", "https://other-shop.example.net")
    assert cors.get("access-control-allow-origin") == "https://other-shop.example.net"
